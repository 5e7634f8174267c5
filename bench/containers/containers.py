#!/usr/bin/python3
"""containers: Shoal vs Docker Swarm running real containers on one node, on the same containerd.

Run through `tools/bench containers [flags]` (which builds shoald and shoal with -c opt and passes
their paths). Everything runs on this machine, on loopback, in a temp dir, and is stopped by PID
at the end:
  - one private containerd (tools/lab/containerd) shared by both orchestrators (Docker in its
    namespace "moby", Shoal in "shoal-bench"), and a private registry (tools/lab/registry) on
    127.0.0.1 holding two tags of the busybox test image (tools/lab/image);
  - the anchor: `ctr run -d` of the same image (image present), TRIALS times -> p50; and R of
    them at once (16 in flight): the runtime's own floor for starting R containers;
  - Shoal's task start alone: a service scaled 1, 2, ..., TRIALS one task at a time, the
    agent's assignment -> RUNNING p50 over those starts (what `ctr run -d` is compared with);
  - Shoal: one shoald (manager + worker, --executor containerd), `service create --replicas R`
    until R running, then `service update --image` (parallelism P, delay 0) until every replica
    runs the new image and the update completed; task start (assignment -> RUNNING, image
    present) from the agent's shoal_agent_task_start_seconds summary when it exports one;
  - Docker Swarm: dockerd 20.10 (Debian's docker.io) on the same containerd, the same service
    create and update.
The image's command exits promptly on SIGTERM (a shell that traps it), so neither side waits out a
stop grace period. Last stdout line: one JSON object with both sides and the ratios.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(REPO, "tools", "lab")
# PID 1 in the container: exits at once on SIGTERM (wait is interrupted by the trapped signal).
CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def log(msg):
    print(f"containers: {msg}", file=sys.stderr, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(argv, timeout=120, check=True, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): "
                           f"{r.stderr.strip() or r.stdout.strip()}")
    return r


def wait_for(what, cond, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def done_or(value, want):
    """True when value == want, else value (what a progress line shows)."""
    return True if value == want else value


def p50(xs):
    return round(statistics.median(xs), 4) if xs else None


class Lab:
    """containerd + registry + the two image tags."""

    def __init__(self, root):
        self.root = root
        self.sock = None
        self.addr = None

    def start(self):
        self.sock = run([os.path.join(LAB, "containerd"), "start",
                         os.path.join(self.root, "containerd")]).stdout.strip().splitlines()[-1]
        self.addr = run([os.path.join(LAB, "registry"), "start", os.path.join(self.root, "registry"),
                         "--port", str(free_port())]).stdout.strip().splitlines()[-1]
        images = {}
        for tag in ("1", "2"):
            tar = os.path.join(self.root, f"busybox-{tag}.tar")
            build = [os.path.join(LAB, "image"), "build", tar, "--label", f"bench.tag={tag}"]
            for arg in CMD:
                build += ["--cmd", arg]
            run(build, timeout=300)
            run([os.path.join(LAB, "registry"), "push", os.path.join(self.root, "registry"), tar,
                 f"busybox:{tag}"])
            images[tag] = f"{self.addr}/busybox:{tag}"
        log(f"containerd at {self.sock}, registry at {self.addr}")
        return images

    def stop(self):
        if self.sock:
            run([os.path.join(LAB, "containerd"), "stop", os.path.join(self.root, "containerd")],
                check=False, timeout=60)
        if self.addr:
            run([os.path.join(LAB, "registry"), "stop", os.path.join(self.root, "registry")],
                check=False, timeout=60)


def bench_ctr(lab, image, trials, parallel=0):
    """`ctr run -d` of a present image: seconds per run (the anchor for task start)."""
    ctr = ["ctr", "-a", lab.sock, "-n", "bench-ctr"]
    run(ctr + ["images", "pull", "--plain-http", image], timeout=300)
    times = []
    for i in range(trials):
        cid = f"ctr-{i}"
        t0 = time.monotonic()
        run(ctr + ["run", "-d", image, cid] + CMD)
        times.append(time.monotonic() - t0)
        run(ctr + ["task", "kill", "-s", "SIGKILL", cid], check=False)
        wait_for(f"{cid} to stop", lambda: "STOPPED" in run(
            ctr + ["task", "ls"], check=False).stdout.split(cid, 1)[-1].split("\n", 1)[0], 20)
        run(ctr + ["task", "delete", cid], check=False)
        run(ctr + ["containers", "delete", cid], check=False)
    res = {"name": "ctr run -d (containerd 1.6, image present)", "trials": trials,
           "run_p50_s": p50(times), "run_max_s": round(max(times), 4)}
    if parallel > 0:
        # The runtime's own floor for `service create --replicas N`: N `ctr run -d` at once (16
        # in flight), no orchestrator at all. Neither side can start N containers faster.
        import concurrent.futures
        ids = [f"par-{i}" for i in range(parallel)]
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda cid: run(ctr + ["run", "-d", image, cid] + CMD), ids))
        res["parallel_n"] = parallel
        res["parallel_s"] = round(time.monotonic() - t0, 2)
        cleanup_namespace(ctr)
    run(ctr + ["images", "rm", "--sync", image], check=False)
    return res


class Orchestrator:
    """What the two sides share: timing a service create and an image update."""

    def replicas(self):  # (running on `image`, total running) or None
        raise NotImplementedError

    def time_until(self, what, cond, timeout):
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            v = cond()
            if v != last:
                log(f"  {time.monotonic() - t0:6.1f}s {what}: {v}")
                last = v
            if v is True:
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"{what}: not done within {timeout}s (last {last})")


class Shoal(Orchestrator):
    def __init__(self, args, lab, root):
        self.a = args
        self.lab = lab
        self.root = os.path.join(root, "shoal")
        os.makedirs(self.root)
        self.sock = os.path.join(self.root, "shoald.sock")
        self.proc = None
        self.metrics = f"127.0.0.1:{free_port()}"

    def cli(self, *args, timeout=120, check=True):
        return run([self.a.shoal, "-H", "unix://" + self.sock, *args], timeout=timeout,
                   check=check)

    def start(self):
        logf = open(os.path.join(self.root, "shoald.log"), "ab")
        self.proc = subprocess.Popen(
            [self.a.shoald, "--state-dir", os.path.join(self.root, "state"), "--socket", self.sock,
             "--node-name", "bench", "--executor", "containerd", "--containerd", self.lab.sock,
             "--containerd-namespace", "shoal-bench", "--insecure-registry", self.lab.addr,
             "--metrics-addr", self.metrics, "--log-level", self.a.log_level]
            + self.a.shoald_arg,
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        wait_for("shoald's control socket", lambda: self.cli(
            "info", "--format", "json", check=False, timeout=10).returncode == 0, 30)
        addr = f"127.0.0.1:{free_port()}"
        self.cli("swarm", "init", "--listen-addr", addr, "--advertise-addr", addr)

    def tasks(self, service):
        r = self.cli("service", "ps", "--format", "json", "--filter", "desired-state=running",
                     "--no-trunc", service, check=False, timeout=30)
        out = []
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def running(self, service, image):
        ts = self.tasks(service)
        return sum(1 for t in ts if str(t.get("CurrentState", "")).startswith("Running") and
                   t.get("Image", "").split("@")[0] == image)

    def update_state(self, service):
        r = self.cli("service", "inspect", service, check=False, timeout=30)
        try:
            svc = json.loads(r.stdout)
            svc = svc[0] if isinstance(svc, list) else svc
            return str(svc.get("UpdateStatus", {}).get("State", ""))
        except ValueError:
            return ""

    def create(self, name, image, replicas):
        self.cli("service", "create", "-d", "--name", name, "--replicas", str(replicas), image)

    def update(self, name, image, parallelism):
        self.cli("service", "update", "-d", "--image", image, "--update-parallelism",
                 str(parallelism), "--update-delay", "0s", name)

    def remove(self, name):
        self.cli("service", "rm", name, check=False)

    def task_start_p50(self):
        """p50 of assignment -> RUNNING from the agent's metrics, when it exports them."""
        import urllib.request
        try:
            text = urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5).read()
        except OSError:
            return None
        for line in text.decode().splitlines():
            if line.startswith("shoal_agent_task_start_seconds{") and 'quantile="0.5"' in line:
                return round(float(line.rsplit(" ", 1)[1]), 4)
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The containers shoald leaves running on purpose (a restarted agent adopts them) go
        # with the namespace: kill and delete every task and container in it.
        ctr = ["ctr", "-a", self.lab.sock, "-n", "shoal-bench"]
        cleanup_namespace(ctr)


class Docker(Orchestrator):
    def __init__(self, args, lab, root):
        self.a = args
        self.lab = lab
        self.root = os.path.join(root, "docker")
        os.makedirs(self.root)
        self.env = dict(os.environ, DOCKER_HOST="unix://" + os.path.join(self.root, "docker.sock"))
        self.proc = None

    def docker(self, *args, timeout=120, check=True):
        return run(["docker", *args], timeout=timeout, check=check, env=self.env)

    def start(self):
        logf = open(os.path.join(self.root, "dockerd.log"), "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--containerd", self.lab.sock, "--data-root",
             os.path.join(self.root, "data"), "--exec-root", os.path.join(self.root, "exec"),
             "--pidfile", os.path.join(self.root, "dockerd.pid"), "-H",
             self.env["DOCKER_HOST"], "--iptables=false", "--ip-masq=false", "--bridge=none",
             "--insecure-registry", self.lab.addr],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        wait_for("dockerd", lambda: self.docker("version", check=False,
                                                timeout=10).returncode == 0, 60)
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1")

    def running(self, service, image):
        r = self.docker("service", "ps", "--filter", "desired-state=running", "--format",
                        "{{.Image}} {{.CurrentState}}", service, check=False, timeout=30)
        return sum(1 for line in r.stdout.splitlines()
                   if line.split(" ", 1)[0].split("@")[0] == image and " Running" in line)

    def update_state(self, service):
        r = self.docker("service", "inspect", "--format", "{{if .UpdateStatus}}"
                        "{{.UpdateStatus.State}}{{end}}", service, check=False, timeout=30)
        return r.stdout.strip()

    def create(self, name, image, replicas):
        self.docker("service", "create", "-d", "--name", name, "--replicas", str(replicas), image)

    def update(self, name, image, parallelism):
        self.docker("service", "update", "-d", "--image", image, "--update-parallelism",
                    str(parallelism), "--update-delay", "0s", name)

    def remove(self, name):
        self.docker("service", "rm", name, check=False)

    def task_start_p50(self):
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.docker("swarm", "leave", "--force", check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        cleanup_namespace(["ctr", "-a", self.lab.sock, "-n", "moby"])


def cleanup_namespace(ctr):
    tasks = run(ctr + ["task", "ls", "-q"], check=False).stdout.split()
    for t in tasks:
        run(ctr + ["task", "kill", "-s", "SIGKILL", t], check=False)
    for t in tasks:
        for _ in range(50):
            if run(ctr + ["task", "delete", t], check=False).returncode == 0:
                break
            time.sleep(0.1)
    for c in run(ctr + ["containers", "ls", "-q"], check=False).stdout.split():
        run(ctr + ["containers", "delete", c], check=False)


def probe_task_start(side, image, starts, timeout):
    """One task at a time (a service scaled 1, 2, ..., `starts`), so that each start is timed
    alone, as `ctr run -d` is: the agent's assignment -> RUNNING p50 over those starts."""
    name = "probe"
    side.cli("service", "create", "-d", "--name", name, "--replicas", "0", image)
    for i in range(1, starts + 1):
        side.cli("service", "scale", "-d", f"{name}={i}")
        side.time_until(f"probe {i} running", lambda: done_or(side.running(name, image), i),
                        timeout)
    p = side.task_start_p50()
    side.remove(name)
    side.time_until("probe removed", lambda: len(side.tasks(name)) == 0 or None, timeout)
    return p


def bench_side(side, images, a):
    """service create of R replicas, then an image update of all of them."""
    res = {}
    side.start()
    if isinstance(side, Shoal):
        log(f"Shoal: task start, one at a time ({a.ctr_trials} starts)")
        res["task_start_alone_p50_s"] = probe_task_start(side, images["1"], a.ctr_trials,
                                                         a.timeout)
    name = "bench"
    log(f"{side.__class__.__name__}: service create --replicas {a.replicas}")
    t0 = time.monotonic()
    side.create(name, images["1"], a.replicas)
    res["create_s"] = round(time.monotonic() - t0 + side.time_until(
        f"{a.replicas} running", lambda: done_or(side.running(name, images["1"]), a.replicas),
        a.timeout), 2)
    log(f"{side.__class__.__name__}: service update --image (parallelism {a.parallelism})")
    t0 = time.monotonic()
    side.update(name, images["2"], a.parallelism)
    res["update_s"] = round(time.monotonic() - t0 + side.time_until(
        f"{a.replicas} running the new image",
        lambda: done_or(side.running(name, images["2"]), a.replicas), a.timeout), 2)
    res["update_completed_s"] = round(time.monotonic() - t0 + side.time_until(
        "update completed", lambda: done_or(side.update_state(name), "completed"), a.timeout), 2)
    # Under load: every start of the create and the update (R at a time).
    res["task_start_p50_s"] = side.task_start_p50()
    side.remove(name)
    return res


def machine(before):
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    after = open("/proc/loadavg").read().split()[:3]
    return (f"{os.cpu_count()} vCPU {model}, Linux {os.uname().release}, load avg "
            f"{' '.join(before)} -> {' '.join(after)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--replicas", type=int, default=50)
    p.add_argument("--parallelism", type=int, default=10)
    p.add_argument("--ctr-trials", type=int, default=20)
    p.add_argument("--timeout", type=float, default=300, help="seconds per phase")
    p.add_argument("--skip-docker", action="store_true")
    p.add_argument("--work-dir", default="/var/tmp")
    p.add_argument("--log-level", default="info")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    p.add_argument("--shoald-arg", action="append", default=[],
                   help="extra shoald argument (repeatable), e.g. --shoald-arg=--shim-group-size=8")
    p.add_argument("--shoald", required=True)
    p.add_argument("--shoal", required=True)
    a = p.parse_args()
    if os.geteuid() != 0:
        log("needs root (containerd, runc, dockerd)")
        return 2
    if not a.skip_docker and shutil.which("dockerd") is None:
        log("dockerd is missing: apt-get install docker.io (or pass --skip-docker)")
        return 2
    before = open("/proc/loadavg").read().split()[:3]

    def on_term(signum, frame):
        raise KeyboardInterrupt  # the finally below stops every process by PID

    signal.signal(signal.SIGTERM, on_term)
    root = tempfile.mkdtemp(prefix="shoal-containers-", dir=a.work_dir)
    lab = Lab(root)
    out = {"bench": "containers", "replicas": a.replicas, "parallelism": a.parallelism}
    failed = False
    try:
        images = lab.start()
        out["anchor_ctr"] = bench_ctr(lab, images["1"], a.ctr_trials, a.replicas)
        for key, cls in (("ours", Shoal), ("anchor", Docker)):
            if key == "anchor" and a.skip_docker:
                continue
            side = cls(a, lab, root)
            try:
                out[key] = bench_side(side, images, a)
            except Exception as e:  # noqa: BLE001 - reported in the JSON
                log(f"{key}: error: {e}")
                out[key] = {"error": str(e)}
                failed = True
            finally:
                side.stop()
        out["ours"]["name"] = "shoal (1 node, -c opt, containerd executor)"
        if "anchor" in out:
            out["anchor"]["name"] = "Docker Swarm 20.10 (dockerd on the same containerd)"
    except Exception as e:  # noqa: BLE001
        log(f"error: {e}")
        out["error"] = str(e)
        failed = True
    finally:
        lab.stop()
        if a.keep or failed:
            log(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    ratio = {}
    ours, anchor = out.get("ours", {}), out.get("anchor", {})
    for k in ("create_s", "update_s", "update_completed_s"):
        if ours.get(k) and anchor.get(k):
            ratio[f"{k}_docker_over_shoal"] = round(anchor[k] / ours[k], 2)
    ctr_p50 = out.get("anchor_ctr", {}).get("run_p50_s")
    if ours.get("task_start_alone_p50_s") and ctr_p50:
        ratio["task_start_over_ctr_run"] = round(ours["task_start_alone_p50_s"] / ctr_p50, 2)
    if ours.get("task_start_p50_s") and ctr_p50:
        ratio["task_start_under_load_over_ctr_run"] = round(ours["task_start_p50_s"] / ctr_p50, 2)
    out["ratio"] = ratio
    floor = out.get("anchor_ctr", {}).get("parallel_s")
    if floor and anchor.get("create_s"):
        # The best create ratio this machine allows: Docker's time over the runtime's floor.
        ratio["create_docker_over_runtime_floor"] = round(anchor["create_s"] / floor, 2)
    if floor and ours.get("create_s"):
        ratio["create_shoal_over_runtime_floor"] = round(ours["create_s"] / floor, 2)
    out["targets"] = {
        "create_2x_faster": ratio.get("create_s_docker_over_shoal", 0) >= 2,
        "update_2x_faster": ratio.get("update_s_docker_over_shoal", 0) >= 2,
        "task_start_within_1_5x_ctr": 0 < ratio.get("task_start_over_ctr_run", 99) <= 1.5,
    }
    out["machine"] = machine(before)
    print(f"{'':28} {'create s':>9} {'update s':>9} {'completed s':>12} {'task start p50':>15}")
    for key in ("ours", "anchor"):
        s = out.get(key, {})
        if s and "error" not in s:
            print(f"{s['name'][:28]:28} {s['create_s']:>9} {s['update_s']:>9} "
                  f"{s['update_completed_s']:>12} {str(s.get('task_start_p50_s')):>15}")
    print(f"{a.replicas} x ctr run -d at once (runtime floor): {floor} s")
    print(f"ctr run -d p50: {ctr_p50} s; Shoal task start alone p50: "
          f"{ours.get('task_start_alone_p50_s')} s")
    print(json.dumps(out, separators=(",", ":")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
