#!/usr/bin/env python3
"""A mock of the OpenAI Responses API for the end-to-end tests of Codex in ws.

Serves HTTPS on 127.0.0.1 (the test's certificate), over server-sent events
(POST /v1/responses) and over WebSocket (GET /v1/responses, Upgrade), the
two ways Codex calls it. Its first answer in a conversation is a call of
Codex's `exec` tool running the test's shell command; once the tool's output
comes back, it answers with a message quoting that output. Every request is
logged as one JSON line (method, path, authorization, upgrade).

usage: mock_openai.py CERT KEY COMMAND_FILE LOG_FILE PORT_FILE
"""

import base64
import hashlib
import http.server
import json
import socket
import ssl
import struct
import sys
import threading

CERT, KEY, COMMAND_FILE, LOG_FILE, PORT_FILE = sys.argv[1:6]
LOCK = threading.Lock()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(entry):
    with LOCK, open(LOG_FILE, "a") as f:
        f.write(json.dumps(entry) + "\n")


def tool_output(items):
    """The text of the last tool output in a request's input, if any."""
    out = None
    for it in items or []:
        if it.get("type") in ("custom_tool_call_output", "function_call_output"):
            o = it.get("output")
            out = o if isinstance(o, str) else json.dumps(o)
    return out


def events(request):
    """The Responses API events answering one request."""
    rid = "resp_%d" % threading.get_ident()
    usage = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
    done = tool_output(request.get("input"))
    if done is None:
        with open(COMMAND_FILE) as f:
            command = f.read()
        source = ("const r = await tools.exec_command({cmd: %s, yield_time_ms: 30000});\n"
                  "text(JSON.stringify(r));\n") % json.dumps(command)
        item = {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_ws_1", "name": "exec",
                "input": source, "status": "completed"}
    else:
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "annotations": [], "text": "MOCK-DONE " + done[:4000]}]}
    return [
        {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": {"id": rid, "status": "completed", "usage": usage, "output": [item]}},
    ]


def ws_frame(payload, opcode=1):
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def ws_read(rfile):
    """One client frame (masked): (opcode, payload), or None at EOF."""
    h = rfile.read(2)
    if len(h) < 2:
        return None
    opcode, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", rfile.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", rfile.read(8))[0]
    mask = rfile.read(4) if h[1] & 0x80 else b"\0\0\0\0"
    data = bytearray(rfile.read(n))
    for i in range(len(data)):
        data[i] ^= mask[i % 4]
    return opcode, bytes(data)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def note(self, extra=None):
        entry = {"method": self.command, "path": self.path,
                 "authorization": self.headers.get("authorization"),
                 "upgrade": self.headers.get("upgrade")}
        entry.update(extra or {})
        log(entry)

    def do_GET(self):
        if self.headers.get("upgrade", "").lower() == "websocket" and self.path.startswith("/v1/responses"):
            return self.websocket()
        self.note()
        body = b'{"object":"list","data":[]}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        self.note({"tool_output": tool_output(request.get("input"))})
        if not self.path.startswith("/v1/responses"):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        for e in events(request):
            self.wfile.write(("event: %s\ndata: %s\n\n" % (e["type"], json.dumps(e))).encode())
            self.wfile.flush()
        self.close_connection = True

    def websocket(self):
        key = self.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.note({"websocket": True})
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            frame = ws_read(self.rfile)
            if frame is None:
                break
            opcode, payload = frame
            if opcode == 8:
                self.wfile.write(ws_frame(payload[:2], 8))
                break
            if opcode == 9:
                self.wfile.write(ws_frame(payload, 10))
                continue
            if opcode != 1:
                continue
            try:
                request = json.loads(payload)
            except ValueError:
                continue
            log({"method": "WS", "path": self.path, "type": request.get("type"),
                 "tool_output": tool_output(request.get("input"))})
            for e in events(request):
                self.wfile.write(ws_frame(json.dumps(e).encode()))
            self.wfile.flush()
        self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
