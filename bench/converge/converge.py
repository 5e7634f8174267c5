#!/usr/bin/python3
"""converge: time for a real 3-manager swarm to run R replicas on simulated nodes, and to scale.

Run through `tools/bench converge [flags]` (which builds shoald, shoal and swarm_sim with -c opt
and passes their paths). Starts 3 managers (real shoald processes, --executor sim, loopback,
state in a temp dir), joins ceil(nodes / nodes-per-process) swarm_sim processes (simulated
nodes), creates a replicated service (image sim/app) with `shoal service create -d`, and times
until `service ls --format json` shows R/R running; then `service scale` by +1,000 and to R/100,
and a 1,000-replica service's `service update --image` (parallelism 0, no delay), timing each.
Every process is started here and stopped by PID at the end. Last stdout line: the JSON object,
which also gives each manager's and each swarm_sim's peak thread count, and swarm_sim's CPU time.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time


def log(msg):
    print(f"converge: {msg}", file=sys.stderr, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Runner:
    def __init__(self, args):
        self.args = args
        self.procs = []  # (name, Popen)
        self.root = tempfile.mkdtemp(prefix="shoal-converge-", dir=args.work_dir)
        self.managers = []  # dicts: name, sock, addr, proc
        self.sims = []  # dicts: name, proc, threads_max

    def spawn(self, name, argv):
        logf = open(os.path.join(self.root, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE if name.startswith("sim") else logf,
                             stderr=logf, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    def cli(self, mgr, *args, timeout=60, check=True):
        r = subprocess.run([self.args.shoal, "-H", "unix://" + mgr["sock"], *args],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"shoal {' '.join(args)} failed ({r.returncode}): "
                               f"{r.stderr.strip() or r.stdout.strip()}")
        return r

    def wait_for(self, what, cond, timeout, interval=0.2):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(interval)
        raise RuntimeError(f"timed out after {timeout}s waiting for {what} (logs in {self.root})")

    def start_manager(self, i):
        name = f"manager{i}"
        d = os.path.join(self.root, name)
        os.makedirs(d)
        m = {"name": name, "sock": os.path.join(d, "shoald.sock"),
             "addr": f"127.0.0.1:{free_port()}"}
        m["proc"] = self.spawn(name, [self.args.shoald, "--state-dir", os.path.join(d, "state"),
                                      "--socket", m["sock"], "--node-name", name,
                                      "--executor", "sim", "--log-level", self.args.log_level])
        self.wait_for(f"{name}'s control socket",
                      lambda: self.cli(m, "info", "--format", "json", check=False,
                                       timeout=10).returncode == 0, 30)
        self.managers.append(m)
        return m

    def service_replicas(self, mgr, name):
        r = self.cli(mgr, "service", "ls", "--format", "json", check=False, timeout=30)
        if r.returncode != 0:
            return None
        for line in r.stdout.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("Name") == name:
                rep = str(o.get("Replicas", ""))
                try:
                    running, desired = rep.split(" ")[0].split("/")
                    return int(running), int(desired)
                except ValueError:
                    return None
        return None

    def time_until_running(self, mgr, name, want, timeout, interval=0.5):
        """Seconds until `want` running and desired == want; polls every `interval` s."""
        t0 = time.monotonic()
        last = None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            rep = self.service_replicas(mgr, name)
            if rep != last:
                log(f"  {time.monotonic() - t0:6.1f}s {name}: {rep[0] if rep else '?'}/"
                    f"{rep[1] if rep else '?'} running")
                last = rep
            if rep and rep[0] == want and rep[1] == want:
                return time.monotonic() - t0, None
            self.sample_rss()
            time.sleep(interval)
        return None, f"not converged within {timeout}s (last {last})"

    def time_until_image(self, mgr, name, image, want, timeout, interval=0.2):
        """Seconds until `want` tasks of `name` run `image` (service ps)."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() < t0 + timeout:
            r = self.cli(mgr, "service", "ps", "--format", "json", "--filter",
                         "desired-state=running", name, timeout=60)
            n = sum(1 for o in self.json_lines(r.stdout)
                    if str(o.get("CurrentState", "")).startswith("Running") and
                    o.get("Image") == image)
            if n != last:
                log(f"  {time.monotonic() - t0:6.1f}s {name}: {n}/{want} running {image}")
                last = n
            if n == want:
                return time.monotonic() - t0, None
            time.sleep(interval)
        return None, f"not updated within {timeout}s (last {last})"

    def sample_rss(self):
        for m in self.managers:
            v = vm_hwm_kib(m["proc"].pid)
            if v is not None:
                m["hwm_kib"] = max(m.get("hwm_kib", 0), v)
            t = threads(m["proc"].pid)
            if t is not None:
                m["threads_max"] = max(m.get("threads_max", 0), t)
        for s in self.sims:
            t = threads(s["proc"].pid)
            if t is not None:
                s["threads_max"] = max(s.get("threads_max", 0), t)

    def stop_all(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} (pid {p.pid}) did not stop in time: SIGKILL")
                p.kill()
                p.wait()

    def run(self):
        a = self.args
        res = {"name": "shoal (3 managers, -c opt, sim executor)", "nodes": a.nodes,
               "replicas": a.replicas, "scale_to": a.scale_to}
        log(f"work dir {self.root}")
        m1 = self.start_manager(1)
        self.cli(m1, "swarm", "init", "--listen-addr", m1["addr"], "--advertise-addr", m1["addr"])
        mtoken = self.cli(m1, "swarm", "join-token", "-q", "manager").stdout.strip()
        wtoken = self.cli(m1, "swarm", "join-token", "-q", "worker").stdout.strip()
        for i in (2, 3):
            m = self.start_manager(i)
            self.cli(m, "swarm", "join", "--token", mtoken, "--listen-addr", m["addr"],
                     "--advertise-addr", m["addr"], m1["addr"], timeout=60)
        self.wait_for("3 managers reachable", lambda: sum(
            1 for o in self.json_lines(self.cli(m1, "node", "ls", "--format", "json").stdout)
            if "Reachable" in str(o.get("ManagerStatus", "")) or
            "Leader" in str(o.get("ManagerStatus", ""))) == 3, 60)
        # Managers do not run tasks here: only the simulated nodes do.
        for m in self.managers:
            self.cli(m1, "node", "update", "--availability", "drain", m["name"])
        log("3 managers up; managers drained")

        t0 = time.monotonic()
        sims = []
        left = a.nodes
        k = 0
        while left > 0:
            n = min(a.nodes_per_process, left)
            p = self.spawn(f"sim{k}", [a.swarm_sim, "--manager", m1["addr"], "--token", wtoken,
                                       "--nodes", str(n), "--name-prefix", f"sim{k}",
                                       "--join-timeout", f"{a.join_timeout}s"])
            sims.append(p)
            self.sims.append({"name": f"sim{k}", "proc": p, "nodes": n})
            left -= n
            k += 1
        for i, p in enumerate(sims):
            line = p.stdout.readline().decode().strip()  # bounded by swarm_sim's --join-timeout
            if "joined" not in line:
                raise RuntimeError(f"swarm_sim {i} did not join (see {self.root}/sim{i}.log)")
            log(line)
            # Keep draining its stdout: a full pipe would block the process.
            threading.Thread(target=lambda out=p.stdout: [None for _ in out], daemon=True).start()
        res["join_s"] = round(time.monotonic() - t0, 2)
        ready = self.wait_for(f"{a.nodes} worker nodes Ready", lambda: (lambda c: c
                              if c >= a.nodes else 0)(sum(
                                  1 for o in self.json_lines(
                                      self.cli(m1, "node", "ls", "--format", "json").stdout)
                                  if o.get("Status") == "Ready" and
                                  o.get("Availability") == "Active")), 120, 1.0)
        res["join_ready_s"] = round(time.monotonic() - t0, 2)
        log(f"{ready} nodes Ready in {res['join_ready_s']}s")
        self.sample_rss()
        cpu0 = {m["name"]: cpu_seconds(m["proc"].pid) for m in self.managers}
        sim_cpu0 = {s["name"]: cpu_seconds(s["proc"].pid) for s in self.sims}
        res["sim_join_cpu_s"] = {k: round(v or 0, 1) for k, v in sim_cpu0.items()}

        log(f"service create: {a.replicas} replicas")
        t_create = time.monotonic()
        self.cli(m1, "service", "create", "-d", "--name", "app", "--replicas", str(a.replicas),
                 "sim/app", timeout=120)
        create_rpc = time.monotonic() - t_create
        secs, err = self.time_until_running(m1, "app", a.replicas, a.timeout)
        secs = None if secs is None else secs + create_rpc
        res["create_rpc_s"] = round(create_rpc, 3)
        res["converge_s"] = None if secs is None else round(secs, 2)
        res["tasks_per_s"] = None if secs is None else round(a.replicas / secs, 1)
        if err:
            res["converge_error"] = err
        # The target's own wording: `service scale` and `update` of 1,000 tasks.
        up = a.replicas + 1000
        log(f"scale up by 1000 to {up}")
        t_up = time.monotonic()
        self.cli(m1, "service", "scale", "-d", f"app={up}", timeout=120)
        rpc = time.monotonic() - t_up
        s_up, err_up = self.time_until_running(m1, "app", up, a.timeout, interval=0.1)
        res["scale_up_1000_s"] = None if s_up is None else round(s_up + rpc, 2)
        if err_up:
            res["scale_up_error"] = err_up
        log(f"scale to {a.scale_to}")
        t_scale = time.monotonic()
        self.cli(m1, "service", "scale", "-d", f"app={a.scale_to}", timeout=120)
        rpc = time.monotonic() - t_scale
        s2, err2 = self.time_until_running(m1, "app", a.scale_to, a.timeout)
        res["scale_s"] = None if s2 is None else round(s2 + rpc, 2)
        if err2:
            res["scale_error"] = err2
        log("service of 1000 replicas, then update --image of all of them (parallelism 0)")
        self.cli(m1, "service", "create", "-d", "--name", "upd", "--replicas", "1000",
                 "sim/app", timeout=120)
        s_c, err_c = self.time_until_running(m1, "upd", 1000, a.timeout, interval=0.1)
        if err_c:
            res["update_error"] = f"create: {err_c}"
        else:
            t_upd = time.monotonic()
            self.cli(m1, "service", "update", "-d", "--image", "sim/app2",
                     "--update-parallelism", "0", "--update-delay", "0s", "upd", timeout=120)
            rpc = time.monotonic() - t_upd
            s_u, err_u = self.time_until_image(m1, "upd", "sim/app2", 1000, a.timeout)
            res["update_1000_s"] = None if s_u is None else round(s_u + rpc, 2)
            if err_u:
                res["update_error"] = err_u
        self.sample_rss()
        res["manager_cpu_s"] = {m["name"]: round((cpu_seconds(m["proc"].pid) or 0) -
                                                 (cpu0[m["name"]] or 0), 1)
                                for m in self.managers}
        res["manager_peak_rss_mib"] = {m["name"]: round(m.get("hwm_kib", 0) / 1024, 1)
                                       for m in self.managers}
        res["manager_threads_max"] = {m["name"]: m.get("threads_max") for m in self.managers}
        # swarm_sim processes: nodes, peak thread count, CPU over both phases (after joining).
        res["sims"] = {s["name"]: {"nodes": s["nodes"], "threads_max": s.get("threads_max"),
                                   "cpu_s": round((cpu_seconds(s["proc"].pid) or 0) -
                                                  (sim_cpu0[s["name"]] or 0), 1)}
                       for s in self.sims}
        return res

    @staticmethod
    def json_lines(text):
        out = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def machine(before):
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    after = open("/proc/loadavg").read().split()[:3]
    return (f"{cpus} vCPU {model}, Linux {os.uname().release}, load avg {' '.join(before)} -> "
            f"{' '.join(after)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    # One swarm_sim process holds 1,000 nodes with ~20 threads (gRPC callbacks + one timer).
    p.add_argument("--nodes-per-process", type=int, default=1000)
    p.add_argument("--replicas", type=int, default=100000)
    p.add_argument("--scale-to", type=int, default=None, help="default replicas/100")
    p.add_argument("--timeout", type=float, default=600, help="seconds per convergence")
    p.add_argument("--join-timeout", type=float, default=300)
    p.add_argument("--work-dir", default="/var/tmp")
    p.add_argument("--log-level", default="info")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    p.add_argument("--shoald", required=True)
    p.add_argument("--shoal", required=True)
    p.add_argument("--swarm-sim", required=True)
    a = p.parse_args()
    if a.scale_to is None:
        a.scale_to = max(1, a.replicas // 100)
    before = open("/proc/loadavg").read().split()[:3]

    def on_term(signum, frame):
        raise KeyboardInterrupt  # the finally below stops every process by PID

    signal.signal(signal.SIGTERM, on_term)
    r = Runner(a)
    ours = None
    try:
        ours = r.run()
    except Exception as e:  # noqa: BLE001 - reported in the JSON
        log(f"error: {e}")
        ours = {"error": str(e)}
    finally:
        r.stop_all()
        if a.keep or (ours and "error" in ours):
            log(f"logs kept in {r.root}")
        else:
            shutil.rmtree(r.root, ignore_errors=True)
    anchor = {"name": "Nomad C1M (published: 3,750 tasks/s on 5 servers; not run here)",
              "tasks_per_s": 3750}
    ratio = {}
    if ours.get("tasks_per_s"):
        ratio["tasks_per_s"] = round(ours["tasks_per_s"] / anchor["tasks_per_s"], 2)
    targets = {}
    if "converge_s" in ours:
        targets["converge_le_20s_at_100k"] = (ours["converge_s"] is not None and
                                              ours["tasks_per_s"] >= 5000)
        targets["scale_1000_le_2s"] = (ours.get("scale_up_1000_s") is not None and
                                       ours["scale_up_1000_s"] <= 2)
        targets["update_1000_le_2s"] = (ours.get("update_1000_s") is not None and
                                        ours["update_1000_s"] <= 2)
    print(f"{'nodes':>8} {'replicas':>9} {'join s':>7} {'converge s':>10} {'tasks/s':>8} "
          f"{'+1000 s':>7} {'scale to':>8} {'scale s':>7} {'upd 1000 s':>10}  "
          f"manager peak RSS MiB")
    if "error" not in ours:
        print(f"{ours['nodes']:>8} {ours['replicas']:>9} {ours['join_ready_s']:>7} "
              f"{str(ours['converge_s']):>10} {str(ours['tasks_per_s']):>8} "
              f"{str(ours.get('scale_up_1000_s')):>7} {ours['scale_to']:>8} "
              f"{str(ours['scale_s']):>7} {str(ours.get('update_1000_s')):>10}  "
              f"{' / '.join(str(v) for v in ours['manager_peak_rss_mib'].values())}")
    print(json.dumps({"bench": "converge", "ours": ours, "anchor": anchor, "ratio": ratio,
                      "targets": targets, "machine": machine(before)}, separators=(",", ":")))
    return 0 if "error" not in ours else 1


if __name__ == "__main__":
    sys.exit(main())
