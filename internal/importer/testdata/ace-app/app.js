// A tiny atlassian-connect-express app for Tenantry's import tests. ACE's
// own install route verifies each signed `installed` callback and saves it
// through ACE's own store adapter; the tests then import what ACE wrote.
//
// Environment:
//   ACE_STORE             the ACE `store` option as JSON, e.g.
//                         {"adapter":"sequelize","dialect":"postgres","url":"postgres://..."}
//                         {"adapter":"sequelize","dialect":"sqlite","storage":"/tmp/x.db"}
//                         {"adapter":"redis","url":"redis://127.0.0.1:6379"}
//   ACE_APP_KEY           the descriptor's key
//   CONNECT_KEYS_CDN_URL  where ACE fetches install keys (the tests' fake key server)
// It listens on 127.0.0.1 on a free port and prints "listening <port>".
"use strict";
const http = require("http");
const express = require("express");
const ace = require("atlassian-connect-express");

const app = express();
app.set("env", "production");
app.use(express.json());

const server = http.createServer(app);
server.listen(0, "127.0.0.1", () => {
  const port = server.address().port;
  const addon = ace(app, {
    config: {
      production: {
        localBaseUrl: `http://127.0.0.1:${port}`,
        port,
        store: JSON.parse(process.env.ACE_STORE),
        appKey: process.env.ACE_APP_KEY,
        whitelist: "*.atlassian.net",
        validateDescriptor: false,
        watch: false
      }
    }
  });
  app.use(addon.middleware());

  // An app that keeps uninstalled tenants: ACE has no uninstall route of
  // its own; this one marks the stored clientInfo as uninstalled.
  app.post("/uninstalled", addon.authenticateInstall(), async (req, res) => {
    try {
      const stored = await addon.settings.get("clientInfo", req.body.clientKey);
      if (stored) {
        await addon.settings.set("clientInfo", { ...stored, eventType: "uninstalled" }, req.body.clientKey);
      }
      res.status(204).end();
    } catch (err) {
      res.status(500).send(String(err));
    }
  });

  // Wait for the store to be ready (Sequelize syncs its tables first).
  const ready = addon.settings.connectionPromise || Promise.resolve();
  ready.then(() => console.log(`listening ${port}`), err => {
    console.error(`store not ready: ${err}`);
    process.exit(1);
  });
});
