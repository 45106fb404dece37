// The CDP open API as typed asynchronous calls: one member function per endpoint.
//
// Error policy: a call returns Result<T>. A CDP `code != 0`, an HTTP error status, a
// transport failure after the last retry and a malformed reply are all *results*
// (CallError) that the caller looks at; only programming errors throw.
//
// Retries (through http::Backoff): HTTP 408/429/5xx, timeouts, resets, and `code == -1`
// whose msg marks a transient condition ("系统繁忙", "busy", "timeout", ...). An auth failure
// (HTTP 401/403, or a msg saying the token is invalid/expired) re-reads the token once and
// retries. Every retry is logged at debug with its reason.
#pragma once

#include <cstdint>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/outcome/policy/terminate.hpp>
#include <boost/outcome/result.hpp>
#include <spdlog/logger.h>

#include "cdp/models.hpp"
#include "config/config.hpp"
#include "config/token.hpp"
#include "http/client.hpp"
#include "http/retry.hpp"

namespace cdpsync::cdp {

namespace net = boost::asio;

struct CallError {
    enum class Kind {
        transport,    // network failure after the last attempt (see transport_kind)
        http_status,  // a non-200 HTTP status
        cdp_code,     // HTTP 200 with code != 0
        malformed,    // the body is not a valid reply
        auth,         // refused credentials, also after re-reading the token
        cancelled,
    };
    Kind kind = Kind::transport;
    std::string endpoint;               // path, e.g. "/customer-group-ref/customerAddGroups"
    unsigned http_status = 0;           // 0 when no response
    std::optional<int> cdp_code;
    std::string msg;                    // CDP msg, or transport / parse detail
    int attempts = 0;
    std::optional<http::ErrorKind> transport_kind;
    bool not_json = false;  // malformed: the body is no JSON at all (a proxy's error page)

    // "endpoint /x: HTTP 200, code -1: 客户不存在 (after 1 attempt)"
    std::string describe() const;
    // True when retrying later may help (transport, 5xx, 429, transient code -1, a body that
    // is no JSON at all).
    bool transient() const;
};

const char* to_string(CallError::Kind kind);

struct Done {};

// Every group a listing gave, and the `total` its last page reported. Fewer groups than that
// total: some moved between pages while they were read (or the CDP counts more than it
// lists), so a name not among them may still exist.
struct GroupList {
    std::vector<Group> groups;
    int64_t total = 0;
    bool complete() const { return static_cast<int64_t>(groups.size()) >= total; }
};

namespace outcome = boost::outcome_v2;

// A call's value or its CallError: has_value(), value(), error(); built from
// outcome::success(v) / outcome::failure(e). Reading the side that is not there terminates.
template <class T>
using Result = outcome::result<T, CallError, outcome::policy::terminate>;

// Classifiers of a `code != 0` reply's msg (exposed for tests and the simulator's faults).
bool is_transient_msg(const std::string& msg);
bool is_auth_msg(const std::string& msg);
// Refusals of a membership write known to be about the request itself (the API document and
// the simulator use 客户不存在 / 群组不存在 / 智能群组...).
bool is_unknown_customer_msg(const std::string& msg);
bool is_unknown_group_msg(const std::string& msg);
bool is_smart_group_msg(const std::string& msg);

// What a member page keeps of each record: the customer id alone (a streaming parse, no
// DOM: what a sync needs), or also the whole record as received (Member::record).
enum class MemberRecords { ids, whole };

struct ApiOptions {
    http::ClientOptions http;
    http::RetryOptions retry;
    std::string customer_id_field;  // "" = auto: customerId when present, else id
    int64_t page_size = 200;
    int max_pages_in_flight = 8;

    static ApiOptions from_config(const config::CdpConfig& cdp);
};

struct ApiStats {
    uint64_t calls = 0;      // attempts sent (each retry counts)
    uint64_t retries = 0;    // attempts after the first
    uint64_t failures = 0;   // calls that ended in a CallError
    uint64_t token_rereads = 0;
    uint64_t http_429 = 0;   // attempts answered 429 Too Many Requests
    // Attempts by endpoint path and outcome (attempt_outcome's words).
    std::map<std::string, std::map<std::string, uint64_t>> attempts_by_endpoint;
};

class Api {
public:
    Api(net::any_io_executor executor, ApiOptions options, config::TokenSource token,
        std::shared_ptr<spdlog::logger> log = nullptr);
    ~Api();
    Api(const Api&) = delete;
    Api& operator=(const Api&) = delete;

    // Groups. create_group and add_folder are not idempotent: an attempt that may have been
    // applied (timeout, reset, 5xx, unreadable reply) is never repeated here; the caller looks
    // the name up before creating again.
    net::awaitable<Result<int64_t>> create_group(CreateGroup request);
    net::awaitable<Result<Done>> delete_group(int64_t group_id);
    net::awaitable<Result<Done>> update_group(UpdateGroup request);
    net::awaitable<Result<Page<Group>>> query_groups(GroupQuery query);
    // Every page of simpleQuery (up to max_pages_in_flight at once).
    net::awaitable<Result<std::vector<Group>>> query_all_groups(std::string search_key = "",
                                                               std::optional<int64_t> folder_id = {});
    // The same within a budget, with the `total` of its last page: nullopt, after one call,
    // when the first page's total says the listing takes more than `max_pages` calls (0: no
    // budget).
    net::awaitable<Result<std::optional<GroupList>>> query_groups_within(std::string search_key,
                                                                        std::optional<int64_t> folder_id,
                                                                        int64_t max_pages);

    // Folders.
    net::awaitable<Result<int64_t>> add_folder(std::string name, std::string parent_code = "");
    net::awaitable<Result<Done>> delete_folder(int64_t folder_id);
    net::awaitable<Result<Done>> update_folder(int64_t folder_id, std::string name);
    net::awaitable<Result<std::vector<Folder>>> folder_tree();

    // Memberships.
    net::awaitable<Result<Done>> customer_add_groups(MembershipChange change);
    net::awaitable<Result<Done>> customer_delete_groups(MembershipChange change);
    net::awaitable<Result<Done>> customer_update_groups(MembershipChange change);
    // One page, whole records.
    net::awaitable<Result<Page<Member>>> members_page(int64_t group_id, int64_t current, int64_t size);
    net::awaitable<Result<std::vector<CustomerGroup>>> groups_of_customer(int64_t customer_id,
                                                                         int type = kStaticGroup);

    // Pages through a group's members from `first_page` (1-based), fetching up to
    // max_pages_in_flight pages at once and handing them to `on_page` in page order.
    // Copes with pages shorter than asked (the server's own cap) and a `total` that
    // changes underway: it stops at the first short or empty page past the known total.
    // `on_page` may throw to abort; the exception propagates. By default the records carry
    // the customer id alone (Member::record is null).
    using MemberPageHandler = std::function<void(int64_t page_number, Page<Member>&& page)>;
    net::awaitable<Result<Done>> for_each_member_page(int64_t group_id, MemberPageHandler on_page,
                                                      int64_t first_page = 1,
                                                      MemberRecords keep = MemberRecords::ids);
    // The same with a sink that may suspend: the pager awaits it before handing over the next
    // page (the reads ahead stay at max_pages_in_flight), so a slow consumer holds the pager
    // back without blocking the io_context.
    using MemberPageSink = std::function<net::awaitable<void>(int64_t page_number, Page<Member> page)>;
    net::awaitable<Result<Done>> for_each_member_page_awaited(int64_t group_id, MemberPageSink on_page,
                                                              int64_t first_page = 1,
                                                              MemberRecords keep = MemberRecords::ids);

    ApiStats stats() const;
    http::Client& http_client();
    void set_rate_limit(double qps);
    // Cancels the calls in flight and the retry sleeps, for good: every call from now on
    // ends as CallError::cancelled. Call on the executor's thread.
    void stop();
    // Counts every attempt answered (or failed) into `counter`, which another thread may
    // read; null stops counting. A counter that does not move means no call is answered.
    void count_progress_in(std::atomic<uint64_t>* counter);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace cdpsync::cdp
