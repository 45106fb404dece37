#include "http/retry.hpp"

#include <gtest/gtest.h>

namespace cdpsync::http {
namespace {

using std::chrono::milliseconds;

Result status(unsigned code) { return Response{code, "{}", std::nullopt, {}}; }

Result error(ErrorKind kind) { return outcome::failure(TransportError{kind, "detail"}); }

TEST(TransientReason, StatusTable) {
    struct Case {
        unsigned status;
        bool transient;
    };
    for (auto [code, transient] : {Case{200, false}, Case{204, false}, Case{301, false}, Case{400, false},
                                   Case{401, false}, Case{403, false}, Case{404, false}, Case{408, true},
                                   Case{409, false}, Case{422, false}, Case{429, true}, Case{500, true},
                                   Case{502, true}, Case{503, true}, Case{504, true}, Case{599, true}}) {
        auto reason = transient_reason(status(code));
        EXPECT_EQ(reason.has_value(), transient) << "HTTP " << code;
        if (transient) {
            EXPECT_EQ(*reason, "HTTP " + std::to_string(code));
        }
    }
}

TEST(TransientReason, TransportErrorTable) {
    struct Case {
        ErrorKind kind;
        bool transient;
    };
    for (auto [kind, transient] : {Case{ErrorKind::resolve, true}, Case{ErrorKind::connect, true},
                                   Case{ErrorKind::timeout, true}, Case{ErrorKind::connection_reset, true},
                                   Case{ErrorKind::tls_verify, false}, Case{ErrorKind::tls_handshake, false},
                                   Case{ErrorKind::protocol, false}, Case{ErrorKind::cancelled, false}}) {
        auto reason = transient_reason(error(kind));
        EXPECT_EQ(reason.has_value(), transient) << to_string(kind);
        if (transient) {
            EXPECT_EQ(*reason, to_string(kind));
        }
    }
}

TEST(ParseRetryAfter, DeltaSeconds) {
    EXPECT_EQ(parse_retry_after("0"), milliseconds(0));
    EXPECT_EQ(parse_retry_after("3"), milliseconds(3000));
    EXPECT_EQ(parse_retry_after(" 120 "), milliseconds(120000));
    // Absurd values are clamped to a day instead of overflowing.
    EXPECT_EQ(parse_retry_after("99999999999999999999999"), milliseconds(86400000));
}

TEST(ParseRetryAfter, HttpDateFormsRelativeToNow) {
    // 1994-11-06 08:49:37 UTC = 784111777
    const auto now = std::chrono::system_clock::from_time_t(784111777 - 30);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(30000));
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), milliseconds(30000));
    EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), milliseconds(30000));
}

TEST(ParseRetryAfter, DateInThePastIsZero) {
    const auto now = std::chrono::system_clock::from_time_t(784111777 + 3600);
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(0));
}

TEST(ParseRetryAfter, GarbageIsNullopt) {
    EXPECT_FALSE(parse_retry_after(""));
    EXPECT_FALSE(parse_retry_after("soon"));
    EXPECT_FALSE(parse_retry_after("-5"));
    EXPECT_FALSE(parse_retry_after("1.5"));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST"));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT"));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT"));
    EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT trailing"));
}

TEST(Backoff, DelaysStayWithinTheExponentialCap) {
    Backoff backoff(RetryOptions{6, milliseconds(100), milliseconds(1000)}, 42);
    for (int attempt = 1; attempt <= 8; ++attempt) {
        const milliseconds cap = std::min(milliseconds(100 << (attempt - 1)), milliseconds(1000));
        milliseconds largest{0};
        for (int i = 0; i < 500; ++i) {
            const auto d = backoff.delay(attempt);
            ASSERT_GE(d.count(), 0);
            ASSERT_LE(d, cap) << "attempt " << attempt;
            largest = std::max(largest, d);
        }
        // Full jitter over 500 draws reaches the upper part of the range.
        EXPECT_GT(largest, cap / 2) << "attempt " << attempt;
    }
}

TEST(Backoff, JitterSpreadsTheDelays) {
    Backoff backoff(RetryOptions{6, milliseconds(1000), milliseconds(30000)}, 7);
    milliseconds smallest = milliseconds::max();
    for (int i = 0; i < 500; ++i) smallest = std::min(smallest, backoff.delay(3));
    EXPECT_LT(smallest, milliseconds(400));  // full jitter starts at zero, not at half
}

TEST(Backoff, HugeAttemptNumbersStayCapped) {
    Backoff backoff(RetryOptions{100, milliseconds(200), milliseconds(30000)}, 1);
    for (int i = 0; i < 100; ++i) EXPECT_LE(backoff.delay(1000), milliseconds(30000));
}

TEST(Backoff, RetryAfterIsAMinimumHonouredBeyondMaxDelayUpToFiveMinutes) {
    Backoff backoff(RetryOptions{6, milliseconds(100), milliseconds(5000)}, 3);
    for (int i = 0; i < 200; ++i) {
        const auto d = backoff.delay(1, milliseconds(2000));
        EXPECT_GE(d, milliseconds(2000));
        EXPECT_LE(d, milliseconds(2000));  // jitter for attempt 1 is at most 100 ms
    }
    // Longer than max_delay: honoured, up to kMaxRetryAfter.
    for (int i = 0; i < 200; ++i) EXPECT_EQ(backoff.delay(2, milliseconds(60000)), milliseconds(60000));
    EXPECT_EQ(kMaxRetryAfter, std::chrono::minutes(5));
    for (int i = 0; i < 200; ++i) EXPECT_EQ(backoff.delay(2, std::chrono::hours(2)), kMaxRetryAfter);
    // A Retry-After below the drawn delay does not shorten it.
    Backoff wide(RetryOptions{6, milliseconds(10000), milliseconds(10000)}, 5);
    bool above = false;
    for (int i = 0; i < 200; ++i) {
        const auto d = wide.delay(1, milliseconds(1));
        EXPECT_GE(d, milliseconds(1));
        above = above || d > milliseconds(1000);
    }
    EXPECT_TRUE(above);
}

TEST(Backoff, SameSeedSameSequence) {
    Backoff a(RetryOptions{}, 99), b(RetryOptions{}, 99);
    for (int attempt = 1; attempt <= 6; ++attempt) EXPECT_EQ(a.delay(attempt), b.delay(attempt));
}

}  // namespace
}  // namespace cdpsync::http
