#include "dns_sd.h"

#ifdef OUTPOST_HAVE_AVAHI
#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/thread-watch.h>
#endif

#include <utility>

namespace outpost::serve {

#ifdef OUTPOST_HAVE_AVAHI

struct Announcer::Impl {
  std::function<void(const std::string&)> log;
  std::string name;
  std::uint16_t port = 0;
  AvahiThreadedPoll* poll = nullptr;
  AvahiClient* client = nullptr;
  AvahiEntryGroup* group = nullptr;

  void say(const std::string& line) {
    if (log) log("dns-sd: " + line);
  }

  // Called on Avahi's thread (or within avahi_client_new).
  void add_service(AvahiClient* c) {
    if (group == nullptr) {
      group = avahi_entry_group_new(c, &Impl::on_group, this);
      if (group == nullptr) {
        say(std::string("cannot create an entry group: ") + avahi_strerror(avahi_client_errno(c)));
        return;
      }
    }
    if (!avahi_entry_group_is_empty(group)) return;
    int r = avahi_entry_group_add_service(
        group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, static_cast<AvahiPublishFlags>(0), name.c_str(),
        "_outpost._tcp", nullptr, nullptr, port, "path=/repo/", "status=/status", nullptr);
    if (r == AVAHI_ERR_COLLISION) {
      rename();
      add_service(c);
      return;
    }
    if (r < 0 || (r = avahi_entry_group_commit(group)) < 0) {
      say(std::string("cannot announce: ") + avahi_strerror(r));
    }
  }

  void rename() {
    char* alt = avahi_alternative_service_name(name.c_str());
    say("the name '" + name + "' is taken on the LAN; announcing as '" + alt + "'");
    name = alt;
    avahi_free(alt);
  }

  static void on_group(AvahiEntryGroup* g, AvahiEntryGroupState state, void* self) {
    auto* impl = static_cast<Impl*>(self);
    switch (state) {
      case AVAHI_ENTRY_GROUP_ESTABLISHED:
        impl->say("announced '" + impl->name + "' (_outpost._tcp, port " +
                  std::to_string(impl->port) + ")");
        break;
      case AVAHI_ENTRY_GROUP_COLLISION:
        impl->rename();
        avahi_entry_group_reset(g);
        impl->add_service(avahi_entry_group_get_client(g));
        break;
      case AVAHI_ENTRY_GROUP_FAILURE:
        impl->say(std::string("announcement failed: ") +
                  avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
        break;
      default: break;
    }
  }

  static void on_client(AvahiClient* c, AvahiClientState state, void* self) {
    auto* impl = static_cast<Impl*>(self);
    switch (state) {
      case AVAHI_CLIENT_S_RUNNING: impl->add_service(c); break;
      case AVAHI_CLIENT_S_COLLISION:
      case AVAHI_CLIENT_S_REGISTERING:
        if (impl->group != nullptr) avahi_entry_group_reset(impl->group);
        break;
      case AVAHI_CLIENT_CONNECTING: impl->say("waiting for avahi-daemon (is it running?)"); break;
      case AVAHI_CLIENT_FAILURE:
        impl->say(std::string("avahi-daemon connection failed: ") +
                  avahi_strerror(avahi_client_errno(c)));
        break;
    }
  }
};

bool Announcer::built_in() { return true; }

Status Announcer::start(const std::string& name, std::uint16_t port) {
  stop();
  impl_->name = name;
  impl_->port = port;
  impl_->poll = avahi_threaded_poll_new();
  if (impl_->poll == nullptr)
    return Status::FailedPrecondition("dns-sd: cannot start Avahi's thread");
  int error = 0;
  impl_->client = avahi_client_new(avahi_threaded_poll_get(impl_->poll), AVAHI_CLIENT_NO_FAIL,
                                   &Impl::on_client, impl_.get(), &error);
  if (impl_->client == nullptr) {
    avahi_threaded_poll_free(impl_->poll);
    impl_->poll = nullptr;
    return Status::FailedPrecondition(std::string("dns-sd: cannot create an Avahi client: ") +
                                      avahi_strerror(error));
  }
  if (avahi_threaded_poll_start(impl_->poll) < 0) {
    stop();
    return Status::FailedPrecondition("dns-sd: cannot start Avahi's thread");
  }
  return Status::Ok();
}

void Announcer::stop() {
  if (impl_->poll != nullptr) avahi_threaded_poll_stop(impl_->poll);
  if (impl_->client != nullptr) avahi_client_free(impl_->client);  // frees the group too
  if (impl_->poll != nullptr) avahi_threaded_poll_free(impl_->poll);
  impl_->client = nullptr;
  impl_->group = nullptr;
  impl_->poll = nullptr;
}

#else

struct Announcer::Impl {
  std::function<void(const std::string&)> log;
};

bool Announcer::built_in() { return false; }

Status Announcer::start(const std::string&, std::uint16_t) {
  return Status::FailedPrecondition(
      "dns-sd: this build has no Avahi support (libavahi-client-dev was missing when it was "
      "built): set [discovery] dns_sd = false, or rebuild with it");
}

void Announcer::stop() {}

#endif

Announcer::Announcer(std::function<void(const std::string&)> log)
    : impl_(std::make_unique<Impl>()) {
  impl_->log = std::move(log);
}

Announcer::~Announcer() { stop(); }

}  // namespace outpost::serve
