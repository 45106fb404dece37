#include "daemon/resync_client.hpp"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "config/logging.hpp"
#include "config/text.hpp"
#include "store/control.hpp"
#include "store/status.hpp"

namespace cdpsync::daemon {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using store::RunProgress;

std::string bar(const RunProgress& p) {
    constexpr int width = 30;
    std::string s = p.run_id ? fmt::format("run {} {:<8} ", p.run_id, store::to_string(p.phase))
                           : fmt::format("{:<8} ", store::to_string(p.phase));
    auto draw = [&](int64_t done, int64_t total) {
        const int filled = static_cast<int>(width * done / total);
        s += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "]";
    };
    if (p.phase == store::RunPhase::apply && p.total > 0) {
        draw(p.done, p.total);
        s += fmt::format(" {}/{} ops {:3d}%", p.done, p.total, static_cast<int>(100 * p.done / p.total));
    } else if (p.phase == store::RunPhase::snapshot && p.groups_total > 0) {
        draw(p.groups_done, p.groups_total);
        s += fmt::format(" {}/{} groups, {} member pages", p.groups_done, p.groups_total, p.pages);
    }
    return s;
}

}  // namespace

namespace {

using Kind = DaemonResync::Kind;

DaemonResync finished(int exit_code) { return DaemonResync{Kind::finished, exit_code, ""}; }

// Waits for request `id` on `conn` until the daemon finished it (or withdraws it when the
// daemon went away before taking it). Throws when PostgreSQL fails meanwhile.
DaemonResync wait_for_request(store::Connection& conn, const std::string& schema, int64_t id, const ResyncAsk& ask,
                              std::ostream& out, std::ostream& err) {
    // A plain time point and a flag: GCC 12 warns (wrongly) about an optional one here.
    Clock::time_point no_leader_since{};
    bool leaderless = false;
    std::optional<store::RunPhase> last_phase;
    bool drew = false;
    while (true) {
        auto request = store::get_resync(conn, schema, id);
        if (!request) {
            err << "the resync request disappeared (deleted by hand?)\n";
            return finished(1);
        }
        if (request->finished) {
            if (drew) err << "\n";
            out << request->message;
            if (!request->message.empty() && request->message.back() != '\n') out << "\n";
            out << std::flush;
            return finished(request->exit_code.value_or(1));
        }
        if (!request->started) {
            if (store::current_leader(conn, schema)) {
                leaderless = false;
            } else if (!leaderless) {
                leaderless = true;
                no_leader_since = Clock::now();
            } else if (Clock::now() - no_leader_since > 10s && store::withdraw_resync(conn, schema, id)) {
                if (drew) err << "\n";
                return DaemonResync{Kind::not_queued, 1, "the daemon went away before taking the request"};
            }
        } else if (auto p = store::running_run(conn, schema)) {
            const std::string line = bar(*p);
            if (ask.progress_bar) {
                err << "\r" << line << "\033[K" << std::flush;
                drew = true;
            } else if (p->phase != last_phase) {
                err << fmt::format("run {}: {}\n", p->run_id, store::to_string(p->phase)) << std::flush;
                last_phase = p->phase;
            }
        }
        std::this_thread::sleep_for(300ms);
    }
}

}  // namespace

DaemonResync resync_through_daemon(const config::Config& cfg, const ResyncAsk& ask, std::ostream& out,
                                   std::ostream& err) {
    const auto& schema = cfg.database.schema;
    std::unique_ptr<store::Connection> conn;
    int64_t id = 0;
    try {
        conn = store::connect_control(cfg.database.dsn, "cdp-sync resync");
        auto leader = store::current_leader(*conn, schema);
        if (!leader) return DaemonResync{Kind::not_queued, 1, ""};
        store::ensure_daemon_tables(*conn, schema);
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        id = store::enqueue_resync(*conn, schema, fmt::format("cdp-sync resync (pid {} on {})", ::getpid(), host), ask.force,
                            ask.only_groups);
        err << fmt::format("a cdp-sync daemon (pid {} on {}) leads schema {}: asked it for a full resync (request {}); "
                           "waiting for it\n",
                           leader->pid ? std::to_string(*leader->pid) : "?", leader->host.empty() ? "?" : leader->host,
                           schema, id)
            << std::flush;
    } catch (const std::exception& e) {
        if (store::classify_db_error(e) == store::DbError::commit_in_doubt)  // the request may be queued
            return DaemonResync{Kind::lost, 1, "the resync request may be queued: " + text::one_line(e.what())};
        return DaemonResync{Kind::not_queued, 1, text::one_line(e.what())};
    }
    try {
        return wait_for_request(*conn, schema, id, ask, out, err);
    } catch (const std::exception& e) {
        return DaemonResync{Kind::lost, 1,
                            fmt::format("lost sight of resync request {} ({}); the daemon may still run it: see "
                                        "cdp-sync status",
                                        id, text::one_line(e.what()))};
    }
}

TerminalProgress::TerminalProgress(const config::Config& cfg, std::ostream&, std::optional<int64_t> snapshot_id) {
    thread_ = std::jthread([dsn = cfg.database.dsn, schema = cfg.database.schema, snapshot_id](std::stop_token stop) {
        std::unique_ptr<store::Connection> conn;
        std::mutex mutex;
        std::condition_variable_any cv;
        while (!stop.stop_requested()) {
            try {
                if (!conn) conn = store::connect_control(dsn, "cdp-sync progress");
                auto p = snapshot_id ? store::snapshot_progress(*conn, schema, *snapshot_id) : store::running_run(*conn, schema);
                if (p) logging::set_status_line(bar(*p));
            } catch (const std::exception&) {
                conn.reset();
            }
            std::unique_lock lock(mutex);
            cv.wait_for(lock, stop, 300ms, [] { return false; });
        }
        logging::set_status_line("");
    });
}

TerminalProgress::~TerminalProgress() = default;  // the jthread asks it to stop and joins

}  // namespace cdpsync::daemon
