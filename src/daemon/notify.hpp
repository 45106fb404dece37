// systemd's notify protocol (sd_notify via libsystemd): READY, STATUS, WATCHDOG, RELOADING,
// STOPPING. Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op; without
// libsystemd at build time too.
#pragma once

#include <chrono>
#include <string>

namespace cdpsync::daemon {

class SystemdNotifier {
public:
    SystemdNotifier();

    bool active() const { return active_; }  // $NOTIFY_SOCKET was set
    void ready();
    void status(const std::string& text);    // "STATUS=..." (the phase `systemctl status` shows)
    void watchdog();                         // "WATCHDOG=1"
    void reloading();
    void stopping();
    // The watchdog interval systemd expects pings within (WatchdogSec=), or zero when off.
    std::chrono::microseconds watchdog_interval() const { return watchdog_; }

private:
    void send(const std::string& state);

    bool active_ = false;
    std::chrono::microseconds watchdog_{0};
};

}  // namespace cdpsync::daemon
