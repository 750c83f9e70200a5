// The client against a real `stowage` in headless Chromium, as a frontend
// app would use it: a page of another origin (CORS) imports the built client
// and moves bytes through the presigned URLs.
//
// Run by `cargo xtask test` (and `cargo xtask browser-test`):
//   node browser.mjs <built client folder>
// with STOWAGE_URL, STOWAGE_PK, STOWAGE_TOKEN and CHROMIUM set.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [clientDir] = process.argv.slice(2);
const { STOWAGE_URL, STOWAGE_PK, STOWAGE_TOKEN, CHROMIUM } = process.env;
if (!clientDir || !STOWAGE_URL || !STOWAGE_PK || !STOWAGE_TOKEN || !CHROMIUM) {
  console.error("usage: STOWAGE_URL=… STOWAGE_PK=… STOWAGE_TOKEN=… CHROMIUM=… node browser.mjs <client dir>");
  process.exit(2);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>stowage client test</title>
<script type="module">
  import * as Stowage from "/client/index.js";
  window.Stowage = Stowage;
  window.clientReady = true;
</script>`;

// A static server on another port: the page's origin differs from the API's.
const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/") {
    res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
    return;
  }
  if (url.pathname.startsWith("/client/")) {
    const file = path.join(clientDir, path.basename(url.pathname));
    if (fs.existsSync(file)) {
      res.writeHead(200, { "content-type": "text/javascript" }).end(fs.readFileSync(file));
      return;
    }
  }
  res.writeHead(404).end();
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const failures = [];
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.clientReady === true, null, { timeout: 15000 });
  const env = { base: STOWAGE_URL, pk: STOWAGE_PK, token: STOWAGE_TOKEN };

  const tests = {
    // One PUT with progress events, then the bytes back through a download URL.
    "single upload with progress": async ({ base, pk, token }) => {
      const { StowageClient } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token });
      const bytes = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7) % 251);
      const events = [];
      const file = new File([bytes], "single.bin", { type: "application/octet-stream" });
      const f = await c.uploadFile(file, { onProgress: (p) => events.push(p), metadata: { k: "v" } });
      const last = events[events.length - 1];
      if (events.length < 2) throw new Error(`progress events: ${events.length}`);
      if (!last || last.loaded !== bytes.length || last.total !== bytes.length)
        throw new Error(`last progress ${JSON.stringify(last)}`);
      if (events.some((e, i) => i > 0 && e.loaded < events[i - 1].loaded))
        throw new Error("progress went backwards");
      if (f.size !== bytes.length || f.originalName !== "single.bin")
        throw new Error(`registered ${JSON.stringify(f)}`);
      const again = await c.getFile(f.id);
      if (again.id !== f.id) throw new Error("getFile");
      const dl = await c.downloadUrl(f.id);
      const got = new Uint8Array(await (await fetch(dl.url)).arrayBuffer());
      const hex = async (b) =>
        [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))]
          .map((x) => x.toString(16).padStart(2, "0"))
          .join("");
      if ((await hex(got)) !== (await hex(bytes))) throw new Error("downloaded bytes differ");
    },

    // 12 MiB in parts of 5 MiB, three at a time; the SHA-256 must match.
    "multipart upload, concurrency 3": async ({ base, pk, token }) => {
      const { StowageClient } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token });
      const size = 12 * 1024 * 1024;
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
      const events = [];
      const file = new File([bytes], "large.bin", { type: "application/octet-stream" });
      const f = await c.uploadLarge(file, {
        partSize: 5 * 1024 * 1024,
        concurrency: 3,
        onProgress: (p) => events.push(p.loaded),
      });
      if (f.size !== size) throw new Error(`size ${f.size}`);
      if (events[events.length - 1] !== size) throw new Error(`progress ends at ${events[events.length - 1]}`);
      const dl = await c.downloadUrl(f.id);
      const got = await (await fetch(dl.url)).arrayBuffer();
      const hex = async (b) =>
        [...new Uint8Array(await crypto.subtle.digest("SHA-256", b))]
          .map((x) => x.toString(16).padStart(2, "0"))
          .join("");
      if ((await hex(got)) !== (await hex(bytes))) throw new Error("SHA-256 differs");
    },

    // A part whose PUT fails is retried; a part failing for good aborts the
    // upload (nothing registered). The page's XMLHttpRequest is patched to
    // fail chosen part PUTs and to count PUTs in flight.
    "failed parts are retried, and a lost part aborts the upload": async ({ base, pk, token }) => {
      const { StowageClient } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token });
      const proto = XMLHttpRequest.prototype;
      const [open, send] = [proto.open, proto.send];
      let failPart = null;
      let failuresLeft = 0;
      let inFlight = 0;
      let most = 0;
      let puts = 0;
      proto.open = function (method, url, ...rest) {
        this.__url = String(url);
        return open.call(this, method, url, ...rest);
      };
      proto.send = function (body) {
        puts++;
        if (failPart && this.__url.includes(`partNumber=${failPart}`) && failuresLeft > 0) {
          failuresLeft--;
          setTimeout(() => this.onerror && this.onerror(new ProgressEvent("error")), 5);
          return;
        }
        most = Math.max(most, ++inFlight);
        this.addEventListener("loadend", () => inFlight--);
        return send.call(this, body);
      };
      try {
        const size = 11 * 1024 * 1024;
        const bytes = new Uint8Array(size).map((_, i) => i % 253);
        failPart = 2;
        failuresLeft = 2;
        const f = await c.uploadLarge(new File([bytes], "retried.bin"), {
          partSize: 5 * 1024 * 1024,
          concurrency: 2,
          attempts: 3,
        });
        if (failuresLeft !== 0) throw new Error("the failures were not injected");
        if (f.size !== size) throw new Error(`size ${f.size}`);
        if (most > 2) throw new Error(`${most} PUTs in flight with concurrency 2`);
        const dl = await c.downloadUrl(f.id);
        const got = new Uint8Array(await (await fetch(dl.url)).arrayBuffer());
        if (got.length !== size || got.some((b, i) => b !== i % 253)) throw new Error("bytes differ");

        failPart = 1;
        failuresLeft = 5;
        let error;
        try {
          await c.uploadLarge(new File([bytes], "lost.bin"), { partSize: 5 * 1024 * 1024, attempts: 2 });
        } catch (e) {
          error = e;
        }
        if (!error || error.code !== "client/network") throw new Error(`expected a network error, got ${error}`);
        const list = await c.listFiles({ search: "lost.bin" });
        if (list.items.length !== 0) throw new Error("a failed upload was registered");
      } finally {
        proto.open = open;
        proto.send = send;
      }
    },

    // Cancelled after the first bytes: AbortError, and nothing registered.
    "a cancelled upload leaves nothing registered": async ({ base, pk, token }) => {
      const { StowageClient } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token });
      const bytes = new Uint8Array(12 * 1024 * 1024);
      const file = new File([bytes], "cancelled.bin", { type: "application/octet-stream" });
      const ctl = new AbortController();
      let error;
      try {
        await c.uploadLarge(file, {
          partSize: 5 * 1024 * 1024,
          concurrency: 1,
          signal: ctl.signal,
          onProgress: (p) => {
            if (p.loaded > 0) ctl.abort();
          },
        });
      } catch (e) {
        error = e;
      }
      if (!error || error.name !== "AbortError") throw new Error(`expected AbortError, got ${error}`);
      const list = await c.listFiles({ search: "cancelled.bin" });
      if (list.items.length !== 0) throw new Error(`registered: ${JSON.stringify(list.items)}`);
      // A single upload cancelled before it starts fails the same way.
      const early = new AbortController();
      early.abort();
      let second;
      try {
        await c.uploadFile(new File([new Uint8Array(10)], "cancelled.bin"), { signal: early.signal });
      } catch (e) {
        second = e;
      }
      if (!second || second.name !== "AbortError") throw new Error(`expected AbortError, got ${second}`);
    },

    // Errors carry the contract's code, status and request id.
    "errors surface their code": async ({ base, pk, token }) => {
      const { StowageClient, StowageError } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token });
      let error;
      try {
        await c.getFile("01890000-0000-7000-8000-000000000000");
      } catch (e) {
        error = e;
      }
      if (!(error instanceof StowageError)) throw new Error(`not a StowageError: ${error}`);
      if (error.code !== "file/not-found" || error.status !== 404 || !error.requestId)
        throw new Error(`got ${error.code} ${error.status} ${error.requestId}`);
      let invalid;
      try {
        await c.uploadFile(new File([new Uint8Array(3)], "x"), { name: "a/b" });
      } catch (e) {
        invalid = e;
      }
      if (!(invalid instanceof StowageError) || invalid.code !== "file/invalid-name")
        throw new Error(`got ${invalid && invalid.code}`);
      const anonymous = new StowageClient({ baseUrl: base, apiKey: "pk_nope" });
      let denied;
      try {
        await anonymous.listFiles();
      } catch (e) {
        denied = e;
      }
      if (!(denied instanceof StowageError) || denied.status !== 401)
        throw new Error(`got ${denied && denied.code}`);
    },

    // Every file, page after page by cursor; patch and delete.
    "cursor iteration, update and delete": async ({ base, pk, token }) => {
      const { StowageClient } = window.Stowage;
      const c = new StowageClient({ baseUrl: base, apiKey: pk, token: () => token });
      for (let i = 0; i < 3; i++) {
        await c.uploadFile(new File([new Uint8Array(10 + i)], `page-${i}.txt`, { type: "text/plain" }));
      }
      const seen = [];
      for await (const f of c.iterateFiles({ limit: 1, search: "page-", sortBy: "originalName", sortDirection: "asc" })) {
        seen.push(f.originalName);
      }
      if (seen.join(",") !== "page-0.txt,page-1.txt,page-2.txt") throw new Error(`iterated ${seen}`);
      const first = (await c.listFiles({ search: "page-0" })).items[0];
      const renamed = await c.updateFile(first.id, { originalName: "renamed.txt", visibility: "public" });
      if (renamed.originalName !== "renamed.txt" || renamed.visibility !== "public")
        throw new Error(`patched ${JSON.stringify(renamed)}`);
      await c.deleteFile(first.id);
      let gone;
      try {
        await c.getFile(first.id);
      } catch (e) {
        gone = e;
      }
      if (!gone || gone.code !== "file/not-found") throw new Error(`after delete: ${gone}`);
    },
  };

  for (const [name, fn] of Object.entries(tests)) {
    const started = Date.now();
    try {
      await page.evaluate(fn, env);
      console.log(`ok    ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failures.push(name);
      console.log(`FAIL  ${name}: ${e.message ?? e}`);
    }
  }
} finally {
  await browser.close();
  server.close();
}
console.log(failures.length ? `${failures.length} browser test(s) failed` : "all browser tests passed");
process.exit(failures.length ? 1 : 0);
