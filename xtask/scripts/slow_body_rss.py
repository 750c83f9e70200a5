"""Memory before, during and after a slow-body attack on the gateway.

    python3 xtask/scripts/slow_body_rss.py target/release/stowage [connections]

Starts the server on a fresh embedded data folder, issues the attack's upload
URLs (and 200 small uploads) first so the database work is done before the
baseline, waits 30 s, then opens N connections that each PUT 200 KB at
20 KB/s, and samples the server's RSS during and 1-90 s after. Prints one JSON
line: RSS before/peak/after (MiB), smaps, threads, fds, the allocator's
allocated/resident bytes (from /metrics) before and after.
"""
import asyncio, json, os, re, shutil, subprocess, sys, time, urllib.request, tempfile

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 800
SIZE = 200_000

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1

async def main():
    data = tempfile.mkdtemp(prefix="stowage-rss-")
    env = dict(os.environ, STOWAGE_DATA_DIR=data, STOWAGE_LISTEN="127.0.0.1:0", RUST_LOG="error")
    env.pop("DATABASE_URL", None)
    p = subprocess.Popen([BIN], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    base = sk = None
    while base is None or sk is None:
        line = p.stdout.readline()
        if not line:
            raise SystemExit("server exited")
        if line.startswith("Stowage listening on "):
            base = line.split()[-1].strip()
        m = re.match(r"\s*secret:\s*(\S+)", line)
        if m:
            sk = m.group(1)
    host, port = base.replace("http://", "").split(":")
    def call(path, body):
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers={"X-API-Key": sk, "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req).read())
    # warm-up: a few normal uploads
    for i in range(20):
        t = call("/v1/files/presigned-url", {"filename": f"w{i}.bin", "contentType": "application/octet-stream", "fileSize": 1000})
        u = t["url"]
        req = urllib.request.Request(u, data=b"x"*1000, method="PUT", headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req).read()
    # The database work of the attack (issuing its URLs) happens before the
    # baseline, so that "before" and "after" differ by the slow bodies only.
    tickets = [call("/v1/files/presigned-url", {"filename": f"a{i}.bin", "contentType": "application/octet-stream", "fileSize": SIZE}) for i in range(N)]
    for i in range(200):
        t = call("/v1/files/presigned-url", {"filename": f"v{i}.bin", "contentType": "application/octet-stream", "fileSize": 1000})
        req = urllib.request.Request(t["url"], data=b"x"*1000, method="PUT", headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req).read()
    time.sleep(30)
    before = rss(p.pid)
    m0 = urllib.request.urlopen(base + "/metrics").read().decode()
    alloc_before = {k: int(v) // (1024*1024) for k, v in re.findall(r"^stowage_allocator_bytes\{state=\"(\w+)\"\} (\d+)", m0, re.M)}
    peak = [before]
    failures = [0]
    async def slow_put(t):
        try:
            await slow_put_inner(t)
        except Exception:
            failures[0] += 1
    async def slow_put_inner(t):
        path = t["url"].split(base, 1)[1]
        r, w = await asyncio.open_connection(host, int(port))
        w.write((f"PUT {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/octet-stream\r\nContent-Length: {SIZE}\r\n\r\n").encode())
        await w.drain()
        chunk = b"y" * 20_000
        for _ in range(SIZE // len(chunk)):
            w.write(chunk)
            await w.drain()
            await asyncio.sleep(1.0)
        try:
            await asyncio.wait_for(r.read(200), 10)
        except Exception:
            pass
        w.close()
    async def sampler():
        while True:
            peak[0] = max(peak[0], rss(p.pid))
            await asyncio.sleep(0.2)
    s = asyncio.create_task(sampler())
    await asyncio.gather(*(slow_put(t) for t in tickets))
    s.cancel()
    after = []
    marks = (1, 5, 15, 30, 60, 90)
    for i, sec in enumerate(marks):
        await asyncio.sleep(sec - (marks[i - 1] if i else 0))
        after.append((sec, rss(p.pid)))
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    alloc = {k: int(v) // (1024*1024) for k, v in re.findall(r"^stowage_allocator_bytes\{state=\"(\w+)\"\} (\d+)", metrics, re.M)}
    trims = re.search(r"^stowage_allocator_trims_total (\d+)", metrics, re.M)
    roll = open(f"/proc/{p.pid}/smaps_rollup").read()
    keep = {k: v for k, v in re.findall(r"^(Rss|Anonymous|LazyFree|Private_Clean|Private_Dirty):\s+(\d+) kB", roll, re.M)}
    threads = len(os.listdir(f"/proc/{p.pid}/task"))
    fds = len(os.listdir(f"/proc/{p.pid}/fd"))
    print(json.dumps({"before_mib": before, "peak_mib": peak[0], "after_mib": after, "connections": N, "smaps_kb": keep, "threads": threads, "fds": fds, "failed_puts": failures[0], "allocator_mib": alloc, "allocator_before_mib": alloc_before, "trims": int(trims.group(1)) if trims else None}))
    p.terminate()
    p.wait()
    shutil.rmtree(data, ignore_errors=True)

asyncio.run(main())
