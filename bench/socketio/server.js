// The Socket.IO 4 peer of `make bench`, written the way a Node team would write a small chat
// server: log in by name in the handshake's `auth`, one room per user for private messages, one
// room per group, acknowledgements through Socket.IO's ack callbacks. Nothing is stored.
//
//   PORT=3001 node server.js                                   one node
//   PORT=3001 REDIS_URL=redis://127.0.0.1:6379 node server.js  one of several, on the Redis adapter
//
// Events (client -> server), each with an ack callback:
//   join    {room}                 join a group's room
//   private {id, to, content}      to every connection of user `to`
//   group   {id, to, content}      to every other member of group `to`
// Server -> client: `message` {id, from, to, kind, content}.
"use strict";

const { createServer } = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 3000);
const host = process.env.HOST || "127.0.0.1";

function valid(msg) {
  return (
    msg !== null &&
    typeof msg === "object" &&
    typeof msg.id === "string" &&
    (typeof msg.to === "string" || typeof msg.to === "number") &&
    typeof msg.content === "string" &&
    msg.content.length <= 8192
  );
}

async function main() {
  const httpServer = createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200).end("ok");
      return;
    }
    res.writeHead(404).end();
  });
  const io = new Server(httpServer, { serveClient: false });

  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pubClient = createClient({ url: process.env.REDIS_URL });
    const subClient = pubClient.duplicate();
    pubClient.on("error", (err) => console.error("redis pub:", err.message));
    subClient.on("error", (err) => console.error("redis sub:", err.message));
    await Promise.all([pubClient.connect(), subClient.connect()]);
    io.adapter(createAdapter(pubClient, subClient));
  }

  io.use((socket, next) => {
    const name = socket.handshake.auth && socket.handshake.auth.name;
    if (typeof name !== "string" || name.length === 0 || name.length > 64) {
      next(new Error("a name is required"));
      return;
    }
    socket.data.name = name;
    next();
  });

  io.on("connection", (socket) => {
    const me = socket.data.name;
    socket.join(`user:${me}`);

    socket.on("join", (msg, ack) => {
      if (typeof ack !== "function") return;
      if (!msg || typeof msg.room !== "string") {
        ack({ ok: false, error: "bad_request" });
        return;
      }
      socket.join(`room:${msg.room}`);
      ack({ ok: true });
    });

    socket.on("private", (msg, ack) => {
      if (typeof ack !== "function") return;
      if (!valid(msg)) {
        ack({ ok: false, id: msg && msg.id, error: "bad_request" });
        return;
      }
      const out = { id: msg.id, from: me, to: msg.to, kind: "private", content: msg.content };
      io.to(`user:${msg.to}`).emit("message", out);
      ack({ ok: true, id: msg.id });
    });

    socket.on("group", (msg, ack) => {
      if (typeof ack !== "function") return;
      if (!valid(msg)) {
        ack({ ok: false, id: msg && msg.id, error: "bad_request" });
        return;
      }
      if (!socket.rooms.has(`room:${msg.to}`)) {
        ack({ ok: false, id: msg.id, error: "not_a_member" });
        return;
      }
      const out = { id: msg.id, from: me, to: msg.to, kind: "group", content: msg.content };
      socket.to(`room:${msg.to}`).emit("message", out);
      ack({ ok: true, id: msg.id });
    });
  });

  httpServer.listen(port, host, () => {
    console.log(`listening on ${host}:${port} pid ${process.pid}`);
  });

  const stop = () => {
    io.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
