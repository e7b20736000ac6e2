// An Express application using mailproxy: sends mail, receives delivery reports.
//
//   node app.js send alice@example.org     queue one message through mailproxy
//   node app.js serve 8080                 receive POST /proxy_sync from mailproxy
//
// Settings (environment): MAILPROXY_URL (default http://127.0.0.1:8000), MAILPROXY_API_KEY
// (the tenant's key), MAILPROXY_ACCOUNT (SMTP account id, default "main"), SYNC_TOKEN (the
// bearer token mailproxy sends with reports: the tenant's client_auth; unset = no check).
"use strict";

const crypto = require("node:crypto");
const express = require("express");

const MAILPROXY_URL = (process.env.MAILPROXY_URL || "http://127.0.0.1:8000").replace(/\/$/, "");

async function sendOrderMail(to, order) {
  const message = {
    id: `order-${order}-${crypto.randomBytes(4).toString("hex")}`, // your id: reports refer to it
    account_id: process.env.MAILPROXY_ACCOUNT || "main",
    from: "Shop <shop@example.com>",
    to: [to],
    subject: `Your order ${order}`,
    body: `Order ${order} ships today.`,
  };
  const answer = await fetch(`${MAILPROXY_URL}/commands/add-messages`, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${process.env.MAILPROXY_API_KEY}`,
    },
    body: JSON.stringify({ messages: [message] }),
  });
  if (!answer.ok) throw new Error(`mailproxy answered ${answer.status}: ${await answer.text()}`);
  const result = await answer.json();
  if (result.rejected.length) throw new Error(`mailproxy refused: ${JSON.stringify(result.rejected)}`);
  return result;
}

function sameToken(given, expected) {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const app = express();
app.use(express.json({ limit: "10mb" }));

// mailproxy's delivery reports: {"delivery_report": [...]} in, {"ok": true} out.
app.post("/proxy_sync", (req, res) => {
  const token = process.env.SYNC_TOKEN;
  if (token && !sameToken(req.get("Authorization") || "", `Bearer ${token}`)) {
    return res.status(401).json({ ok: false, error: "bad token" });
  }
  for (const entry of (req.body && req.body.delivery_report) || []) {
    // Update your own records here (order mail sent, bounced, ...).
    console.log(`report ${entry.id} ${Object.keys(entry).sort().join(",")}`);
  }
  res.json({ ok: true });
});

async function main() {
  const [command, arg] = process.argv.slice(2);
  if (command === "send") {
    console.log(JSON.stringify(await sendOrderMail(arg, "1001")));
  } else if (command === "serve") {
    const port = Number(arg || 8080);
    app.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}/proxy_sync`));
  } else {
    console.error("usage: node app.js send ADDRESS | serve [PORT]");
    process.exit(2);
  }
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
