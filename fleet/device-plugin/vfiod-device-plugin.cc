// SPDX-License-Identifier: LGPL-2.1-or-later
//
// vfiod-device-plugin: the kubelet device plugin of vfiod's exported pools.
//
// One extended resource per pool of /etc/vfiod/pools.json, each served on its own UNIX
// socket in kubelet's device-plugin directory and registered with kubelet. It is a
// companion program and not part of vfiod because kubelet's API is gRPC over HTTP/2:
// Debian's gRPC is C++, and linking it into the daemon would put a threaded runtime
// next to an event loop that must never block, for a feature only Kubernetes hosts
// use. It reads the host itself (the same fleet inventory as `vfioctl cdi`) and asks
// vfiod, a client of its varlink socket, which devices are leased outside Kubernetes.
//
// It rescans the host at once on a PCI uevent (and every --rescan, for what no uevent
// tells) and asks vfiod for its leases every --interval: ListAndWatch streams a new list
// when a device's health changes (Unhealthy: gone from the host, taken off vfio-pci, or
// leased from vfiod), and the CDI spec in --cdi-dir is rewritten when it changes. A
// rescan of a host with a thousand VFs costs tens of milliseconds of CPU, a lease
// query a fraction of one. When kubelet restarts it removes the plugins' sockets and creates its
// own anew: the plugin then serves again and registers again.

#include <grpcpp/grpcpp.h>
#include <libudev.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "api.grpc.pb.h"
#include "view.h"

namespace
{

namespace dp = v1beta1;

struct Options {
        std::string config = "/etc/vfiod/pools.json";
        std::string root;
        std::string plugin_dir = "/var/lib/kubelet/device-plugins";
        std::string cdi_dir = "/var/run/cdi";
        std::string daemon_socket = "/run/vfiod/io.vfiod";
        int interval_ms = 1000; // leases asked of vfiod, kubelet's socket checked
        int rescan_ms = 30000;  // the host rescanned even without a uevent
};

void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_line(const char *fmt, ...)
{
        va_list ap;
        fputs("vfiod-device-plugin: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

struct CStrv {
        char **v = nullptr;
        ~CStrv()
        {
                for (char **p = v; p && *p; p++)
                        free(*p);
                free(v);
        }
};

// One device as kubelet sees it.
struct DeviceState {
        bool healthy;
        int numa_node;
        bool operator==(const DeviceState &o) const
        {
                return healthy == o.healthy && numa_node == o.numa_node;
        }
};

// What every pool's service reads: the latest view and each pool's device list. Devices
// once seen stay in the list, Unhealthy, when they go.
class Host
{
      public:
        explicit Host(fleet_config *c) : config_(c)
        {
        }
        ~Host()
        {
                plugin_view_free(view_);
        }

        // Takes a new view; true when a pool's list changed.
        bool update(plugin_view *v)
        {
                std::lock_guard<std::mutex> lock(mu_);
                plugin_view_free(view_);
                view_ = v;
                return relist();
        }

        // Asks vfiod for the leases of the current view; false when it did not answer.
        // Only the main thread changes view_, so it reads it without the lock while it
        // waits for vfiod, and takes the lock to apply the answer.
        bool update_leases(const std::string &socket)
        {
                bool *leased = nullptr;
                if (!view_ || plugin_view_read_leases(view_, socket.c_str(), &leased) < 0)
                        return false;
                std::lock_guard<std::mutex> lock(mu_);
                plugin_view_set_leases(view_, leased);
                relist();
                return true;
        }

        void stop()
        {
                std::lock_guard<std::mutex> lock(mu_);
                stopping_ = true;
                cv_.notify_all();
        }

        // Waits (at most a second, so cancellation is noticed) for a list newer than
        // generation; the pool's list and its generation.
        uint64_t wait_list(size_t pool, uint64_t seen, std::map<std::string, DeviceState> *out)
        {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait_for(lock, std::chrono::seconds(1),
                             [&] { return stopping_ || generation_ != seen; });
                *out = lists_.size() > pool ? lists_[pool] : std::map<std::string, DeviceState>();
                return generation_;
        }

        bool stopping()
        {
                std::lock_guard<std::mutex> lock(mu_);
                return stopping_;
        }

        // Runs f with the view under the lock.
        template <typename F> auto with_view(F f)
        {
                std::lock_guard<std::mutex> lock(mu_);
                return f(view_);
        }

        fleet_config *config() const
        {
                return config_;
        }

      private:
        // The pools' lists from view_, devices seen before and gone kept as Unhealthy;
        // true when one changed. Called with mu_ held.
        bool relist()
        {
                std::vector<std::map<std::string, DeviceState>> lists(
                        plugin_config_n_pools(config_));
                for (size_t p = 0; p < lists.size(); p++)
                        for (const auto &[name, st] : lists_.size() > p ? lists_[p] : lists[p])
                                lists[p][name] = DeviceState{false, st.numa_node};
                for (size_t i = 0; i < plugin_view_n_devices(view_); i++) {
                        plugin_device d;
                        plugin_view_device(view_, i, &d);
                        lists[d.pool][d.name] = DeviceState{!d.leased, d.numa_node};
                }
                bool changed = lists != lists_;
                lists_ = std::move(lists);
                if (changed) {
                        generation_++;
                        cv_.notify_all();
                }
                return changed;
        }

        fleet_config *config_;
        std::mutex mu_;
        std::condition_variable cv_;
        plugin_view *view_ = nullptr;
        std::vector<std::map<std::string, DeviceState>> lists_;
        uint64_t generation_ = 1;
        bool stopping_ = false;
};

// "vfiod.io/igb-vf" -> "PCI_RESOURCE_VFIOD_IO_IGB_VF", the variable KubeVirt reads the
// addresses of a PCI host device resource from.
std::string resource_env_name(const std::string &resource)
{
        std::string s = "PCI_RESOURCE_";
        for (char c : resource)
                s += isalnum((unsigned char)c) ? (char)toupper((unsigned char)c) : '_';
        return s;
}

class PoolService final : public dp::DevicePlugin::Service
{
      public:
        PoolService(Host *host, size_t pool) : host_(host), pool_(pool)
        {
        }

        grpc::Status GetDevicePluginOptions(grpc::ServerContext *, const dp::Empty *,
                                            dp::DevicePluginOptions *out) override
        {
                out->set_get_preferred_allocation_available(true);
                return grpc::Status::OK;
        }

        grpc::Status ListAndWatch(grpc::ServerContext *ctx, const dp::Empty *,
                                  grpc::ServerWriter<dp::ListAndWatchResponse> *writer) override
        {
                uint64_t seen = 0;
                while (!ctx->IsCancelled() && !host_->stopping()) {
                        std::map<std::string, DeviceState> list;
                        uint64_t gen = host_->wait_list(pool_, seen, &list);
                        if (gen == seen)
                                continue;
                        seen = gen;
                        dp::ListAndWatchResponse resp;
                        for (const auto &[name, st] : list) {
                                dp::Device *d = resp.add_devices();
                                d->set_id(name);
                                d->set_health(st.healthy ? "Healthy" : "Unhealthy");
                                if (st.numa_node >= 0)
                                        d->mutable_topology()->add_nodes()->set_id(st.numa_node);
                        }
                        if (!writer->Write(resp))
                                break;
                }
                return grpc::Status::OK;
        }

        grpc::Status GetPreferredAllocation(grpc::ServerContext *,
                                            const dp::PreferredAllocationRequest *req,
                                            dp::PreferredAllocationResponse *out) override
        {
                return host_->with_view([&](plugin_view *v) {
                        dp::PreferredAllocationResponse resp;
                        for (const auto &c : req->container_requests()) {
                                // Each name looked up once: a request names the whole pool.
                                std::vector<size_t> avail, must;
                                grpc::Status st = check_pool(v, c.available_deviceids(), &avail);
                                if (st.ok())
                                        st = check_pool(v, c.must_include_deviceids(), &must);
                                if (!st.ok())
                                        return st;
                                CStrv chosen;
                                char *detail = nullptr;
                                int r = c.allocation_size() < 0
                                                ? -EINVAL
                                                : plugin_view_preferred(v, avail.data(),
                                                                        avail.size(), must.data(),
                                                                        must.size(),
                                                                        (size_t)c.allocation_size(),
                                                                        &chosen.v, &detail);
                                if (r < 0) {
                                        std::string why = detail ? detail : strerror(-r);
                                        free(detail);
                                        return grpc::Status(
                                                r == -ENOENT ? grpc::StatusCode::NOT_FOUND
                                                             : grpc::StatusCode::INVALID_ARGUMENT,
                                                why);
                                }
                                auto *cr = resp.add_container_responses();
                                for (char **p = chosen.v; *p; p++)
                                        cr->add_deviceids(*p);
                        }
                        *out = std::move(resp);
                        return grpc::Status::OK;
                });
        }

        grpc::Status Allocate(grpc::ServerContext *, const dp::AllocateRequest *req,
                              dp::AllocateResponse *out) override
        {
                return host_->with_view([&](plugin_view *v) {
                        dp::AllocateResponse resp;
                        const char *kind = plugin_config_cdi_kind(host_->config());
                        const std::string resource =
                                plugin_config_pool_resource(host_->config(), pool_);
                        for (const auto &c : req->container_requests()) {
                                grpc::Status st = check_pool(v, c.devices_ids());
                                if (!st.ok())
                                        return st;
                                auto *cr = resp.add_container_responses();
                                std::set<std::string> nodes;
                                std::string addresses;
                                for (const auto &id : c.devices_ids()) {
                                        long i = plugin_view_find(v, id.c_str());
                                        plugin_device d;
                                        plugin_view_device(v, (size_t)i, &d);
                                        if (d.leased)
                                                return grpc::Status(
                                                        grpc::StatusCode::FAILED_PRECONDITION,
                                                        id + " is leased from vfiod outside "
                                                             "Kubernetes");
                                        cr->add_cdi_devices()->set_name(std::string(kind) + "=" +
                                                                        d.name);
                                        for (const char *n : d.nodes)
                                                if (nodes.insert(n).second) {
                                                        auto *spec = cr->add_devices();
                                                        spec->set_container_path(n);
                                                        spec->set_host_path(n);
                                                        spec->set_permissions("rw");
                                                }
                                        CStrv env;
                                        if (plugin_view_device_env(v, (size_t)i, &env.v) < 0)
                                                return grpc::Status(
                                                        grpc::StatusCode::RESOURCE_EXHAUSTED,
                                                        "out of memory");
                                        for (char **p = env.v; *p; p++) {
                                                const char *eq = strchr(*p, '=');
                                                (*cr->mutable_envs())[std::string(
                                                        *p, (size_t)(eq - *p))] = eq + 1;
                                        }
                                        addresses += (addresses.empty() ? "" : ",") + id;
                                }
                                (*cr->mutable_envs())[resource_env_name(resource)] = addresses;
                        }
                        *out = std::move(resp);
                        return grpc::Status::OK;
                });
        }

        grpc::Status PreStartContainer(grpc::ServerContext *, const dp::PreStartContainerRequest *,
                                       dp::PreStartContainerResponse *) override
        {
                return grpc::Status::OK;
        }

      private:
        // Every id must be a device of this pool that is on the host now (else NOT_FOUND);
        // their indices go into *indices.
        template <typename L>
        grpc::Status check_pool(plugin_view *v, const L &ids,
                                std::vector<size_t> *indices = nullptr)
        {
                if (!v)
                        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                            "no view of the host yet");
                if (indices)
                        indices->reserve(ids.size());
                for (const auto &id : ids) {
                        long i = plugin_view_find(v, id.c_str());
                        plugin_device d;
                        if (i >= 0)
                                plugin_view_device(v, (size_t)i, &d);
                        if (i < 0 || d.pool != pool_)
                                return grpc::Status(
                                        grpc::StatusCode::NOT_FOUND,
                                        "no device \"" + id + "\" in pool " +
                                                plugin_config_pool_name(host_->config(), pool_));
                        if (indices)
                                indices->push_back((size_t)i);
                }
                return grpc::Status::OK;
        }

        Host *host_;
        size_t pool_;
};

// A pool's server on its socket, and its registration with kubelet.
class PoolServer
{
      public:
        PoolServer(Host *host, size_t pool, const Options &o) : service_(host, pool), opts_(o)
        {
                name_ = plugin_config_pool_name(host->config(), pool);
                resource_ = plugin_config_pool_resource(host->config(), pool);
                endpoint_ = "vfiod-" + name_ + ".sock";
        }

        std::string path() const
        {
                return opts_.plugin_dir + "/" + endpoint_;
        }

        bool start()
        {
                stop();
                unlink(path().c_str());
                grpc::ServerBuilder b;
                b.AddListeningPort("unix://" + path(), grpc::InsecureServerCredentials());
                b.RegisterService(&service_);
                server_ = b.BuildAndStart();
                if (!server_) {
                        log_line("%s: cannot serve on %s", name_.c_str(), path().c_str());
                        return false;
                }
                return true;
        }

        void stop()
        {
                if (server_) {
                        server_->Shutdown(std::chrono::system_clock::now() +
                                          std::chrono::milliseconds(500));
                        server_.reset();
                }
        }

        bool serving() const
        {
                struct stat st;
                return server_ && stat(path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
        }

        bool register_with_kubelet()
        {
                auto ch = grpc::CreateChannel("unix://" + opts_.plugin_dir + "/kubelet.sock",
                                              grpc::InsecureChannelCredentials());
                auto stub = dp::Registration::NewStub(ch);
                dp::RegisterRequest req;
                req.set_version("v1beta1");
                req.set_endpoint(endpoint_);
                req.set_resource_name(resource_);
                req.mutable_options()->set_get_preferred_allocation_available(true);
                dp::Empty reply;
                grpc::ClientContext ctx;
                ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
                grpc::Status st = stub->Register(&ctx, req, &reply);
                if (!st.ok()) {
                        log_line("%s: kubelet refused or did not answer the registration of %s: "
                                 "%s",
                                 name_.c_str(), resource_.c_str(), st.error_message().c_str());
                        return false;
                }
                log_line("registered %s on %s", resource_.c_str(), endpoint_.c_str());
                return true;
        }

        ~PoolServer()
        {
                stop();
                unlink(path().c_str());
        }

      private:
        PoolService service_;
        Options opts_;
        std::string name_, resource_, endpoint_;
        std::unique_ptr<grpc::Server> server_;
};

int usage(const std::string &message)
{
        fprintf(stderr, "vfiod-device-plugin: %s (see --help)\n", message.c_str());
        return 2;
}

void help()
{
        printf("Usage: vfiod-device-plugin [OPTIONS]\n\n"
               "Serves vfiod's exported pools to kubelet, one resource per pool.\n\n"
               "  --config FILE        the pools (default /etc/vfiod/pools.json)\n"
               "  --root DIR           read sys/ and dev/ below DIR (tests)\n"
               "  --plugin-dir DIR     kubelet's device-plugin directory\n"
               "                       (default /var/lib/kubelet/device-plugins)\n"
               "  --cdi-dir DIR        keep the CDI spec there (default /var/run/cdi;\n"
               "                       empty: do not write it)\n"
               "  --daemon SOCKET      vfiod's socket, for its leases (default\n"
               "                       /run/vfiod/io.vfiod; empty: do not ask)\n"
               "  --interval MS        how often vfiod's leases are asked and kubelet's\n"
               "                       socket is checked (default 1000)\n"
               "  --rescan MS          how often the host is rescanned without a PCI\n"
               "                       uevent (default 30000; with --root, no uevents come)\n");
}

// kubelet.sock's identity: a new one means a restarted kubelet.
ino_t kubelet_socket(const Options &o)
{
        struct stat st;
        return stat((o.plugin_dir + "/kubelet.sock").c_str(), &st) == 0 ? st.st_ino : 0;
}

} // namespace

int main(int argc, char **argv)
{
        Options o;
        for (int i = 1; i < argc; i++) {
                std::string a = argv[i];
                if (a == "--help" || a == "-h") {
                        help();
                        return 0;
                }
                if (i + 1 >= argc)
                        return usage(std::string("unknown option or missing value: ") + argv[i]);
                std::string val = argv[++i];
                if (a == "--config")
                        o.config = val;
                else if (a == "--root")
                        o.root = val;
                else if (a == "--plugin-dir")
                        o.plugin_dir = val;
                else if (a == "--cdi-dir")
                        o.cdi_dir = val;
                else if (a == "--daemon")
                        o.daemon_socket = val;
                else if (a == "--interval" || a == "--rescan") {
                        char *end;
                        long ms = strtol(val.c_str(), &end, 10);
                        if (*end || ms < 10 || ms > 3600000)
                                return usage(a + " takes milliseconds, 10 to 3600000, not " + val);
                        (a == "--interval" ? o.interval_ms : o.rescan_ms) = (int)ms;
                } else
                        return usage(std::string("unknown option ") + argv[i - 1]);
        }

        fleet_config *cfg = nullptr;
        char *detail = nullptr;
        int r = plugin_config_load(o.config.c_str(), &cfg, &detail);
        if (r < 0) {
                log_line("%s", detail ? detail : strerror(-r));
                free(detail);
                return 1;
        }

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &mask, nullptr); // before gRPC starts its threads
        int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

        // PCI uevents wake the loop early; without udev (a test tree) it just polls.
        struct udev *udev = o.root.empty() ? udev_new() : nullptr;
        // Without udevd (a minimal host, a container) the kernel's uevents say the same.
        struct udev_monitor *mon =
                udev ? udev_monitor_new_from_netlink(
                               udev, access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel")
                     : nullptr;
        if (mon && (udev_monitor_filter_add_match_subsystem_devtype(mon, "pci", nullptr) < 0 ||
                    udev_monitor_enable_receiving(mon) < 0))
                mon = udev_monitor_unref(mon);

        auto host = std::make_unique<Host>(cfg);
        std::vector<std::unique_ptr<PoolServer>> servers;
        for (size_t p = 0; p < plugin_config_n_pools(cfg); p++)
                servers.push_back(std::make_unique<PoolServer>(host.get(), p, o));

        std::string spec_written;
        bool leases_warned = false, registered = false, rescan = true;
        auto last_scan = std::chrono::steady_clock::now();
        ino_t kubelet = 0;
        // Says once that vfiod does not answer, and again after it did.
        auto note_leases = [&](bool known) {
                if (!known && !o.daemon_socket.empty() && !leases_warned)
                        log_line("vfiod does not answer on %s: leases are not known (devices "
                                 "leased there will not turn Unhealthy)",
                                 o.daemon_socket.c_str());
                leases_warned = !known;
        };
        for (;;) {
                auto now = std::chrono::steady_clock::now();
                if (!rescan && now - last_scan < std::chrono::milliseconds(o.rescan_ms)) {
                        note_leases(!o.daemon_socket.empty() &&
                                    host->update_leases(o.daemon_socket));
                } else {
                        plugin_view *v = nullptr;
                        bool leases_known = false;
                        rescan = false;
                        last_scan = now;
                        free(detail);
                        detail = nullptr;
                        r = plugin_view_load(o.root.empty() ? nullptr : o.root.c_str(), cfg,
                                             o.daemon_socket.empty() ? nullptr
                                                                     : o.daemon_socket.c_str(),
                                             &v, &leases_known, &detail);
                        if (r < 0)
                                log_line("cannot read the host: %s",
                                         detail ? detail : strerror(-r));
                        else {
                                note_leases(leases_known);
                                // A spec that could not be written is tried again at the
                                // next rescan.
                                char *spec = plugin_view_cdi_spec(v);
                                free(detail);
                                detail = nullptr;
                                if (spec && !o.cdi_dir.empty() && spec_written != spec) {
                                        if (plugin_view_cdi_write(v, o.cdi_dir.c_str(), spec,
                                                                  &detail) < 0)
                                                log_line("%s", detail ? detail
                                                                      : "cannot write the CDI "
                                                                        "spec");
                                        else
                                                spec_written = spec;
                                }
                                free(spec);
                                host->update(v);
                        }
                }

                // A new kubelet.sock, or our socket gone: serve again and register again.
                ino_t k = kubelet_socket(o);
                bool lost = false;
                for (auto &s : servers)
                        lost = lost || !s->serving();
                if (k && (k != kubelet || lost || !registered)) {
                        registered = true;
                        for (auto &s : servers)
                                if (!s->serving() || k != kubelet)
                                        s->start();
                        for (auto &s : servers)
                                registered = s->register_with_kubelet() && registered;
                        kubelet = k;
                } else if (!k)
                        registered = false;

                struct pollfd fds[2] = {{sfd, POLLIN, 0},
                                        {mon ? udev_monitor_get_fd(mon) : -1, POLLIN, 0}};
                int n = poll(fds, 2, o.interval_ms);
                if (n > 0 && (fds[0].revents & POLLIN)) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo != SIGPIPE)
                                break;
                }
                if (n > 0 && (fds[1].revents & POLLIN))
                        while (struct udev_device *d = udev_monitor_receive_device(mon)) {
                                udev_device_unref(d);
                                rescan = true;
                        }
        }
        host->stop();
        servers.clear();
        host.reset();
        udev_monitor_unref(mon);
        udev_unref(udev);
        plugin_config_free(cfg);
        free(detail);
        return 0;
}
