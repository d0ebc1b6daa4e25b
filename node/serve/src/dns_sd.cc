#include "dns_sd.h"

#ifdef OUTPOST_HAVE_AVAHI
#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/address.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/thread-watch.h>
#endif

#include <map>
#include <mutex>
#include <utility>

namespace outpost::serve {

namespace {
constexpr const char* kServiceType = "_outpost._tcp";
}

std::string LanPeer::url() const {
  std::string p = path.empty() || path[0] != '/' ? "/" + path : path;
  if (p.back() != '/') p += '/';
  return "http://" + host + ":" + std::to_string(port) + p;
}

#ifdef OUTPOST_HAVE_AVAHI

struct Announcer::Impl {
  std::function<void(const std::string&)> log;
  std::function<void()> changed;
  std::string name;
  std::uint16_t port = 0;
  bool announce = true;
  bool browse = false;
  AvahiThreadedPoll* poll = nullptr;
  AvahiClient* client = nullptr;
  AvahiEntryGroup* group = nullptr;
  AvahiServiceBrowser* browser = nullptr;
  mutable std::mutex mu;
  std::map<std::string, LanPeer> found;  // by service name (guarded by mu)

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
        kServiceType, nullptr, nullptr, port, "path=/repo/", "status=/status", nullptr);
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

  void forget_peers() {
    if (browser != nullptr) avahi_service_browser_free(browser);
    browser = nullptr;
    std::lock_guard lock(mu);
    found.clear();
  }

  void start_browsing(AvahiClient* c) {
    if (browser != nullptr) return;
    browser =
        avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, kServiceType, nullptr,
                                  static_cast<AvahiLookupFlags>(0), &Impl::on_browse, this);
    if (browser == nullptr) {
      say(std::string("cannot browse for other nodes: ") + avahi_strerror(avahi_client_errno(c)));
    }
  }

  static void on_browse(AvahiServiceBrowser* b, AvahiIfIndex interface, AvahiProtocol protocol,
                        AvahiBrowserEvent event, const char* name, const char* type,
                        const char* domain, AvahiLookupResultFlags flags, void* self) {
    auto* impl = static_cast<Impl*>(self);
    switch (event) {
      case AVAHI_BROWSER_NEW:
        if ((flags & AVAHI_LOOKUP_RESULT_OUR_OWN) != 0 || (impl->announce && impl->name == name)) {
          break;
        }
        // Freed by on_resolve; IPv4 addresses only (an IPv6 link-local one needs a scope).
        if (avahi_service_resolver_new(avahi_service_browser_get_client(b), interface, protocol,
                                       name, type, domain, AVAHI_PROTO_INET,
                                       static_cast<AvahiLookupFlags>(0), &Impl::on_resolve,
                                       impl) == nullptr) {
          impl->say(std::string("cannot resolve '") + name + "': " +
                    avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        }
        break;
      case AVAHI_BROWSER_REMOVE: {
        bool removed = false;
        {
          std::lock_guard lock(impl->mu);
          removed = impl->found.erase(name) != 0;
        }
        if (removed) {
          impl->say(std::string("node '") + name + "' left");
          if (impl->changed) impl->changed();
        }
        break;
      }
      case AVAHI_BROWSER_FAILURE:
        impl->say(std::string("browsing failed: ") +
                  avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        break;
      default: break;
    }
  }

  static void on_resolve(AvahiServiceResolver* r, AvahiIfIndex, AvahiProtocol,
                         AvahiResolverEvent event, const char* name, const char*, const char*,
                         const char*, const AvahiAddress* address, std::uint16_t port,
                         AvahiStringList* txt, AvahiLookupResultFlags flags, void* self) {
    auto* impl = static_cast<Impl*>(self);
    if (event == AVAHI_RESOLVER_FOUND && address != nullptr &&
        (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) == 0) {
      char text[AVAHI_ADDRESS_STR_MAX] = {};
      avahi_address_snprint(text, sizeof text, address);
      LanPeer peer;
      peer.name = name;
      peer.host = text;
      peer.port = port;
      if (AvahiStringList* p = avahi_string_list_find(txt, "path"); p != nullptr) {
        char* key = nullptr;
        char* value = nullptr;
        if (avahi_string_list_get_pair(p, &key, &value, nullptr) == 0 && value != nullptr &&
            value[0] == '/') {
          peer.path = value;
        }
        avahi_free(key);
        avahi_free(value);
      }
      bool changed = false;
      {
        std::lock_guard lock(impl->mu);
        auto it = impl->found.find(peer.name);
        changed = it == impl->found.end() || !(it->second == peer);
        impl->found[peer.name] = peer;
      }
      if (changed) {
        impl->say("found node '" + peer.name + "' at " + peer.url());
        if (impl->changed) impl->changed();
      }
    }
    avahi_service_resolver_free(r);
  }

  static void on_client(AvahiClient* c, AvahiClientState state, void* self) {
    auto* impl = static_cast<Impl*>(self);
    switch (state) {
      case AVAHI_CLIENT_S_RUNNING:
        if (impl->announce) impl->add_service(c);
        if (impl->browse) impl->start_browsing(c);
        break;
      case AVAHI_CLIENT_S_COLLISION:
      case AVAHI_CLIENT_S_REGISTERING:
        if (impl->group != nullptr) avahi_entry_group_reset(impl->group);
        break;
      case AVAHI_CLIENT_CONNECTING:
        impl->forget_peers();
        impl->say("waiting for avahi-daemon (is it running?)");
        break;
      case AVAHI_CLIENT_FAILURE:
        impl->forget_peers();
        impl->say(std::string("avahi-daemon connection failed: ") +
                  avahi_strerror(avahi_client_errno(c)));
        break;
    }
  }
};

bool Announcer::built_in() { return true; }

Status Announcer::start(const std::string& name, std::uint16_t port, bool announce, bool browse) {
  stop();
  impl_->name = name;
  impl_->port = port;
  impl_->announce = announce;
  impl_->browse = browse;
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
  impl_->browser = nullptr;
  impl_->poll = nullptr;
  std::lock_guard lock(impl_->mu);
  impl_->found.clear();
}

std::vector<LanPeer> Announcer::peers() const {
  std::lock_guard lock(impl_->mu);
  std::vector<LanPeer> out;
  for (const auto& [name, p] : impl_->found) out.push_back(p);
  return out;
}

#else

struct Announcer::Impl {
  std::function<void(const std::string&)> log;
  std::function<void()> changed;
};

bool Announcer::built_in() { return false; }

Status Announcer::start(const std::string&, std::uint16_t, bool, bool) {
  return Status::FailedPrecondition(
      "dns-sd: this build has no Avahi support (libavahi-client-dev was missing when it was "
      "built): set [discovery] dns_sd = false, or rebuild with it");
}

void Announcer::stop() {}

std::vector<LanPeer> Announcer::peers() const { return {}; }

#endif

Announcer::Announcer(std::function<void(const std::string&)> log, std::function<void()> changed)
    : impl_(std::make_unique<Impl>()) {
  impl_->log = std::move(log);
  impl_->changed = std::move(changed);
}

Announcer::~Announcer() { stop(); }

}  // namespace outpost::serve
