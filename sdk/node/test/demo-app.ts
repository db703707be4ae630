/**
 * A small Express auth service wired like the seed design's login/logout flow, publishing through
 * authtrail hooks and guarding /me with requireActiveSession. Sessions and the one user live in
 * memory; the password is checked here and never leaves this file.
 */
import { randomUUID } from "node:crypto";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import * as sdk from "../dist/index.js";

export interface DemoUser {
  id: string;
  identifier: string;
  password: string;
}

export interface DemoApp {
  url: string;
  user: DemoUser;
  close(): Promise<void>;
}

export async function startDemoApp(publisher: sdk.Publisher, introspector: sdk.Introspector): Promise<DemoApp> {
  const user: DemoUser = { id: randomUUID(), identifier: `alice+${randomUUID().slice(0, 8)}@example.com`, password: `pw-${randomUUID()}` };
  const sessions = new Map<string, string>(); // session id -> user id
  const hooks = sdk.authtrailHooks({ publisher, source: "/services/sdk-node-demo", trustProxy: true, introspector });

  const app = express();
  app.set("trust proxy", "loopback"); // X-Forwarded-For from a proxy on this host counts
  app.use(express.json());

  app.post("/login", async (req, res, next) => {
    try {
      const { identifier, password } = req.body as { identifier?: string; password?: string };
      if (typeof identifier !== "string" || typeof password !== "string") {
        res.status(400).json({ error: "identifier and password required" });
        return;
      }
      const known = identifier.toLowerCase() === user.identifier;
      if (!known || password !== user.password) {
        await hooks.onLoginFailed(req, {
          identifier,
          reason: known ? "bad_password" : "unknown_user",
          ...(known ? { userId: user.id } : {}),
          loginMethod: "password",
        });
        res.status(401).json({ error: "invalid credentials" });
        return;
      }
      const sessionId = `sess_${randomUUID().replace(/-/g, "")}`;
      sessions.set(sessionId, user.id);
      await hooks.onLogin(req, {
        userId: user.id,
        sessionId,
        loginMethod: "password",
        expiresAt: new Date(Date.now() + 3_600_000),
        identifier,
        refreshTokenId: `rt_${randomUUID().slice(0, 12)}`,
        roles: ["user"],
      });
      res.json({ sessionId, userId: user.id });
    } catch (e) {
      next(e);
    }
  });

  app.post("/logout", async (req, res, next) => {
    try {
      const sessionId = req.get("x-session-id");
      const userId = sessionId === undefined ? undefined : sessions.get(sessionId);
      if (sessionId === undefined || userId === undefined) {
        res.status(401).end();
        return;
      }
      sessions.delete(sessionId);
      await hooks.onLogout(req, { userId, sessionId });
      res.status(204).end();
    } catch (e) {
      next(e);
    }
  });

  app.get(
    "/me",
    sdk.requireActiveSession({ introspector, sessionId: (req) => req.get("x-session-id") }),
    (_req, res) => {
      res.json(res.locals.authtrailSession);
    },
  );

  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    user,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
