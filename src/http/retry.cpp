#include "http/retry.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "config/text.hpp"

namespace cdpsync::http {

std::optional<std::string> transient_reason(const Result& result) {
    if (result.has_error()) {
        switch (result.error().kind) {
        case ErrorKind::resolve:
        case ErrorKind::connect:
        case ErrorKind::timeout:
        case ErrorKind::connection_reset:
            return std::string(to_string(result.error().kind));
        case ErrorKind::tls_handshake:  // a protocol or cipher mismatch does not heal by itself
        case ErrorKind::tls_verify:
        case ErrorKind::protocol:
        case ErrorKind::cancelled:
            return std::nullopt;
        }
        return std::nullopt;
    }
    const unsigned status = result.value().status;
    if (status == 408 || status == 429 || (status >= 500 && status <= 599))
        return "HTTP " + std::to_string(status);
    return std::nullopt;
}

namespace {

int month_index(const char* name) {
    static const char* const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i)
        if (std::strcmp(name, months[i]) == 0) return i;
    return -1;
}

bool valid_weekday(const std::string& name, bool long_form) {
    static const char* const short_days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char* const long_days[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                            "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; ++i)
        if (name == (long_form ? long_days[i] : short_days[i])) return true;
    return false;
}

// The three HTTP-date forms RFC 7231 section 7.1.1.1 obliges a recipient to accept.
std::optional<std::time_t> parse_http_date(const std::string& s) {
    char wday[16] = {}, mon[4] = {}, zone[4] = {};
    int day = 0, year = 0, hh = 0, mm = 0, ss = 0, used = 0;
    std::tm tm{};
    auto whole = [&](int fields, int expected) { return fields == expected && static_cast<size_t>(used) == s.size(); };
    if (whole(std::sscanf(s.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n", wday, &day, mon, &year,
                          &hh, &mm, &ss, zone, &used),
              8) &&
        valid_weekday(wday, false)) {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    } else if (whole(std::sscanf(s.c_str(), "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d %3[A-Z]%n", wday, &day,
                                 mon, &year, &hh, &mm, &ss, zone, &used),
                     8) &&
               valid_weekday(wday, true)) {
        // rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT. A two-digit year more than 50 years
        // ahead is in the past century (RFC 7231).
        year += 2000;
        std::time_t now = std::time(nullptr);
        std::tm now_tm{};
        gmtime_r(&now, &now_tm);
        if (year > now_tm.tm_year + 1900 + 50) year -= 100;
    } else if (whole(std::sscanf(s.c_str(), "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", wday, mon, &day, &hh,
                                 &mm, &ss, &year, &used),
                     7) &&
               valid_weekday(wday, false)) {
        // asctime-date: Sun Nov  6 08:49:37 1994
        std::strcpy(zone, "GMT");
    } else {
        return std::nullopt;
    }
    const int month = month_index(mon);
    if (month < 0 || std::strcmp(zone, "GMT") != 0 || day < 1 || day > 31 || hh > 23 || mm > 59 ||
        ss > 60 || year < 1900)
        return std::nullopt;
    tm.tm_year = year - 1900;
    tm.tm_mon = month;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return timegm(&tm);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& value,
                                                           std::chrono::system_clock::time_point now) {
    const std::string s = text::trim(value);
    if (s.empty()) return std::nullopt;
    if (std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); })) {
        // delta-seconds; anything beyond a day is clamped rather than overflowing.
        constexpr long long max_seconds = 86400;
        long long seconds = 0;
        for (char c : s) {
            seconds = seconds * 10 + (c - '0');
            if (seconds > max_seconds) {
                seconds = max_seconds;
                break;
            }
        }
        return std::chrono::milliseconds(seconds * 1000);
    }
    const auto date = parse_http_date(s);
    if (!date) return std::nullopt;
    const auto at = std::chrono::system_clock::from_time_t(*date);
    if (at <= now) return std::chrono::milliseconds(0);
    return std::chrono::ceil<std::chrono::milliseconds>(at - now);
}

Backoff::Backoff(RetryOptions options, uint64_t seed) : options_(options), rng_(seed) {}

std::chrono::milliseconds Backoff::delay(int attempt, std::optional<std::chrono::milliseconds> retry_after) {
    using std::chrono::milliseconds;
    const milliseconds max_delay = std::max(options_.max_delay, milliseconds(0));
    milliseconds cap = std::max(options_.base_delay, milliseconds(0));
    for (int i = 1; i < attempt && cap < max_delay; ++i) cap *= 2;
    cap = std::min(cap, max_delay);
    std::uniform_int_distribution<int64_t> dist(0, cap.count());
    milliseconds d(dist(rng_));
    // A server asking for more than max_delay is believed, up to kMaxRetryAfter.
    if (retry_after) d = std::max(d, std::min(*retry_after, std::max(max_delay, kMaxRetryAfter)));
    return d;
}

}  // namespace cdpsync::http
