#include "common/protocol/messages.h"

#include <array>

namespace yard::protocol {

const char* CommandName(Command c) {
  switch (c) {
    case Command::kHello:
      return "HELLO";
    case Command::kWelcome:
      return "WELCOME";
    case Command::kTasks:
      return "TASKS";
    case Command::kResults:
      return "RESULTS";
    case Command::kCredit:
      return "CREDIT";
    case Command::kAck:
      return "ACK";
    case Command::kHeartbeat:
      return "HEARTBEAT";
    case Command::kExtend:
      return "EXTEND";
    case Command::kDisconnect:
      return "DISCONNECT";
    case Command::kSubmit:
      return "SUBMIT";
    case Command::kSubmitReply:
      return "SUBMIT_REPLY";
    case Command::kGet:
      return "GET";
    case Command::kGetReply:
      return "GET_REPLY";
    case Command::kWait:
      return "WAIT";
    case Command::kCancel:
      return "CANCEL";
    case Command::kCancelReply:
      return "CANCEL_REPLY";
    case Command::kWorkers:
      return "WORKERS";
    case Command::kWorkersReply:
      return "WORKERS_REPLY";
    case Command::kStats:
      return "STATS";
    case Command::kStatsReply:
      return "STATS_REPLY";
    case Command::kError:
      return "ERROR";
    case Command::kDeadList:
      return "DEAD_LIST";
    case Command::kDeadListReply:
      return "DEAD_LIST_REPLY";
    case Command::kDeadRequeue:
      return "DEAD_REQUEUE";
    case Command::kDeadReply:
      return "DEAD_REPLY";
    case Command::kDeadPurge:
      return "DEAD_PURGE";
    case Command::kJobSubmit:
      return "JOB_SUBMIT";
    case Command::kJobSubmitReply:
      return "JOB_SUBMIT_REPLY";
    case Command::kJobGet:
      return "JOB_GET";
    case Command::kJobReply:
      return "JOB_REPLY";
    case Command::kJobCancel:
      return "JOB_CANCEL";
    case Command::kList:
      return "LIST";
    case Command::kListReply:
      return "LIST_REPLY";
    case Command::kCancelTasks:
      return "CANCEL_TASKS";
  }
  return "UNKNOWN";
}

bool IsKnownCommand(uint8_t c) {
  return (c >= 0x01 && c <= 0x09) || (c >= 0x20 && c <= 0x24) || (c >= 0x26 && c <= 0x2B) ||
         (c >= 0x2F && c <= 0x34) || (c >= 0x40 && c <= 0x44) || c == 0x46 || c == 0x47 ||
         c == 0x80;
}

const char* DisconnectReasonName(DisconnectReason r) {
  switch (r) {
    case DisconnectReason::kShutdown:
      return "shutdown";
    case DisconnectReason::kUnknownSession:
      return "unknown_session";
    case DisconnectReason::kProtocolError:
      return "protocol_error";
    case DisconnectReason::kUnsupportedVersion:
      return "unsupported_version";
    case DisconnectReason::kDuplicateWorker:
      return "duplicate_worker";
    case DisconnectReason::kUnknownCommand:
      return "unknown_command";
    case DisconnectReason::kHeartbeatTimeout:
      return "heartbeat_timeout";
    case DisconnectReason::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kFailRetry:
      return "fail_retry";
    case Outcome::kFailPermanent:
      return "fail_permanent";
    case Outcome::kReleased:
      return "released";
    case Outcome::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

constexpr std::array<TaskState, 7> kAllStates = {
    TaskState::kQueued,    TaskState::kDispatched, TaskState::kSucceeded, TaskState::kFailed,
    TaskState::kCancelled, TaskState::kDead,       TaskState::kExpired};

const char* TaskStateName(TaskState s) {
  switch (s) {
    case TaskState::kQueued:
      return "queued";
    case TaskState::kDispatched:
      return "dispatched";
    case TaskState::kSucceeded:
      return "succeeded";
    case TaskState::kFailed:
      return "failed";
    case TaskState::kCancelled:
      return "cancelled";
    case TaskState::kDead:
      return "dead";
    case TaskState::kExpired:
      return "expired";
  }
  return "unknown";
}

const char* JobPolicyName(JobPolicy p) {
  switch (p) {
    case JobPolicy::kFailFast:
      return "fail-fast";
    case JobPolicy::kContinue:
      return "continue";
  }
  return "unknown";
}

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kRunning:
      return "running";
    case JobState::kReducing:
      return "reducing";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kPartial:
      return "partial";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

std::string TaskStateNames() {
  std::string out;
  for (auto s : kAllStates) {
    if (!out.empty()) out += ' ';
    out += TaskStateName(s);
  }
  return out;
}

StatusOr<TaskState> ParseTaskState(std::string_view text) {
  for (auto s : kAllStates) {
    if (text == TaskStateName(s)) return s;
  }
  return InvalidArgument("'" + std::string(text) +
                         "' is not a task state (one of: " + TaskStateNames() + ")");
}

StatusOr<JobPolicy> ParseJobPolicy(std::string_view text) {
  for (auto p : {JobPolicy::kFailFast, JobPolicy::kContinue}) {
    if (text == JobPolicyName(p)) return p;
  }
  return InvalidArgument("'" + std::string(text) + "' is not a job policy (fail-fast or continue)");
}

}  // namespace yard::protocol
