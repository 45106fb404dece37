#include "daemon/notify.hpp"

#include <cstdint>
#include <cstdlib>

#ifdef CDP_SYNC_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace cdpsync::daemon {

SystemdNotifier::SystemdNotifier() {
    const char* socket = std::getenv("NOTIFY_SOCKET");
    active_ = socket && *socket;
#ifdef CDP_SYNC_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (active_ && sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec);
#endif
}

void SystemdNotifier::send(const std::string& state) {
    if (!active_) return;
#ifdef CDP_SYNC_HAVE_SYSTEMD
    sd_notify(0, state.c_str());
#else
    (void)state;
#endif
}

void SystemdNotifier::ready() { send("READY=1"); }

void SystemdNotifier::status(const std::string& text) {
    std::string line = text.substr(0, text.find('\n'));
    send("STATUS=" + line);
}

void SystemdNotifier::watchdog() { send("WATCHDOG=1"); }
void SystemdNotifier::reloading() { send("RELOADING=1"); }
void SystemdNotifier::stopping() { send("STOPPING=1"); }

}  // namespace cdpsync::daemon
