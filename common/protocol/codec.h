// Encoding and decoding of Yard messages (see messages.h and docs/protocol.md).
//
// Decoding is defensive: every decode runs under msgpack unpack limits derived from the body's
// own size (a container cannot claim more elements than there are bytes left), rejects
// trailing bytes, checks every field's type, and reports any failure as a Status naming the
// message and field. It never throws and never allocates more than a small multiple of the
// input. Thread-safe: no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/protocol/messages.h"
#include "common/status.h"

namespace yard::protocol {

// The 4-byte header frame for `command`.
std::string EncodeHeader(Command command);

enum class HeaderCheck {
  kOk,
  kMalformed,        // not 4 bytes, or not 'Y' 'D'
  kBadVersion,       // a version this build does not speak
  kUnknownRequired,  // unknown command below kFirstOptionalCommand
  kUnknownOptional,  // unknown command at or above it: ignore the message
};
// Checks a header frame; on kOk sets `*command`.
HeaderCheck CheckHeader(std::string_view frame, Command* command);

// Body encoders: one MessagePack array, appended to nothing (a fresh string).
std::string EncodeBody(const Hello& m);
std::string EncodeBody(const Welcome& m);
std::string EncodeBody(const Tasks& m);
std::string EncodeBody(const Results& m);
std::string EncodeBody(const Credit& m);
std::string EncodeBody(const Ack& m);
std::string EncodeBody(const Heartbeat& m);
std::string EncodeBody(const Extend& m);
std::string EncodeBody(const Disconnect& m);
std::string EncodeBody(const Submit& m);
std::string EncodeBody(const SubmitReply& m);
std::string EncodeBody(const Get& m);
std::string EncodeBody(const GetReply& m);
std::string EncodeBody(const Wait& m);
std::string EncodeBody(const Cancel& m);
std::string EncodeBody(const CancelReply& m);
std::string EncodeBody(const Workers& m);
std::string EncodeBody(const DeadList& m);
std::string EncodeBody(const DeadListReply& m);
std::string EncodeBody(const DeadRequeue& m);
std::string EncodeBody(const DeadPurge& m);
std::string EncodeBody(const DeadReply& m);
std::string EncodeBody(const WorkersReply& m);
std::string EncodeBody(const Stats& m);
std::string EncodeBody(const StatsReply& m);
std::string EncodeBody(const Error& m);
std::string EncodeBody(const TaskInfo& m);  // also the stored record format
std::string EncodeBody(const CancelTasks& m);
std::string EncodeBody(const JobSubmit& m);
std::string EncodeBody(const JobSubmitReply& m);
std::string EncodeBody(const JobGet& m);
std::string EncodeBody(const JobCancel& m);
std::string EncodeBody(const JobReply& m);
std::string EncodeBody(const JobInfo& m);  // also the stored job record format
std::string EncodeBody(const List& m);
std::string EncodeBody(const ListReply& m);

// Body decoders: on error `*m` is unspecified and the Status is kInvalidArgument.
Status DecodeBody(std::string_view body, Hello* m);
Status DecodeBody(std::string_view body, Welcome* m);
Status DecodeBody(std::string_view body, Tasks* m);
Status DecodeBody(std::string_view body, Results* m);
Status DecodeBody(std::string_view body, Credit* m);
Status DecodeBody(std::string_view body, Ack* m);
Status DecodeBody(std::string_view body, Heartbeat* m);
Status DecodeBody(std::string_view body, Extend* m);
Status DecodeBody(std::string_view body, Disconnect* m);
Status DecodeBody(std::string_view body, Submit* m);
Status DecodeBody(std::string_view body, SubmitReply* m);
Status DecodeBody(std::string_view body, Get* m);
Status DecodeBody(std::string_view body, GetReply* m);
Status DecodeBody(std::string_view body, Wait* m);
Status DecodeBody(std::string_view body, Cancel* m);
Status DecodeBody(std::string_view body, CancelReply* m);
Status DecodeBody(std::string_view body, Workers* m);
Status DecodeBody(std::string_view body, DeadList* m);
Status DecodeBody(std::string_view body, DeadListReply* m);
Status DecodeBody(std::string_view body, DeadRequeue* m);
Status DecodeBody(std::string_view body, DeadPurge* m);
Status DecodeBody(std::string_view body, DeadReply* m);
Status DecodeBody(std::string_view body, WorkersReply* m);
Status DecodeBody(std::string_view body, Stats* m);
Status DecodeBody(std::string_view body, StatsReply* m);
Status DecodeBody(std::string_view body, Error* m);
Status DecodeBody(std::string_view body, TaskInfo* m);
Status DecodeBody(std::string_view body, CancelTasks* m);
Status DecodeBody(std::string_view body, JobSubmit* m);
Status DecodeBody(std::string_view body, JobSubmitReply* m);
Status DecodeBody(std::string_view body, JobGet* m);
Status DecodeBody(std::string_view body, JobCancel* m);
Status DecodeBody(std::string_view body, JobReply* m);
Status DecodeBody(std::string_view body, JobInfo* m);
Status DecodeBody(std::string_view body, List* m);
Status DecodeBody(std::string_view body, ListReply* m);

// The req_id of a client-port body (every request and reply starts with it), read without
// decoding the rest: lets a client find the call a reply belongs to before decoding it.
StatusOr<uint64_t> PeekReqId(std::string_view body);

// The command that carries each message type.
template <typename M>
struct CommandOf;
#define YARD_COMMAND_OF(Type, Cmd)                 \
  template <>                                      \
  struct CommandOf<Type> {                         \
    static constexpr Command value = Command::Cmd; \
  };
YARD_COMMAND_OF(Hello, kHello)
YARD_COMMAND_OF(Welcome, kWelcome)
YARD_COMMAND_OF(Tasks, kTasks)
YARD_COMMAND_OF(Results, kResults)
YARD_COMMAND_OF(Credit, kCredit)
YARD_COMMAND_OF(Ack, kAck)
YARD_COMMAND_OF(Heartbeat, kHeartbeat)
YARD_COMMAND_OF(Extend, kExtend)
YARD_COMMAND_OF(Disconnect, kDisconnect)
YARD_COMMAND_OF(Submit, kSubmit)
YARD_COMMAND_OF(SubmitReply, kSubmitReply)
YARD_COMMAND_OF(Get, kGet)
YARD_COMMAND_OF(GetReply, kGetReply)
YARD_COMMAND_OF(Wait, kWait)
YARD_COMMAND_OF(Cancel, kCancel)
YARD_COMMAND_OF(CancelReply, kCancelReply)
YARD_COMMAND_OF(Workers, kWorkers)
YARD_COMMAND_OF(DeadList, kDeadList)
YARD_COMMAND_OF(DeadListReply, kDeadListReply)
YARD_COMMAND_OF(DeadRequeue, kDeadRequeue)
YARD_COMMAND_OF(DeadPurge, kDeadPurge)
YARD_COMMAND_OF(DeadReply, kDeadReply)
YARD_COMMAND_OF(WorkersReply, kWorkersReply)
YARD_COMMAND_OF(Stats, kStats)
YARD_COMMAND_OF(StatsReply, kStatsReply)
YARD_COMMAND_OF(Error, kError)
YARD_COMMAND_OF(CancelTasks, kCancelTasks)
YARD_COMMAND_OF(JobSubmit, kJobSubmit)
YARD_COMMAND_OF(JobSubmitReply, kJobSubmitReply)
YARD_COMMAND_OF(JobGet, kJobGet)
YARD_COMMAND_OF(JobCancel, kJobCancel)
YARD_COMMAND_OF(JobReply, kJobReply)
YARD_COMMAND_OF(List, kList)
YARD_COMMAND_OF(ListReply, kListReply)
#undef YARD_COMMAND_OF

}  // namespace yard::protocol
