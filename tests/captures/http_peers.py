#!/usr/bin/env python3
"""HTTP peers for the ward fixture captures (see generate.sh, scenario_http).

  http_peers.py server --host IP --port N
      An embedded-style web server of a fictional test vendor ("WardTestMed"): its Server,
      X-Powered-By and WWW-Authenticate realm name the vendor and a model. Without an
      Authorization header it answers 401; with one, 200 and a JSON body naming a canary
      patient plus a Set-Cookie with the canary MRN. HTTP/1.1 keep-alive, Content-Length framing.

  http_peers.py client --host IP --port N
      A "vital-signs monitor" posting an observation with http.client: a User-Agent naming the
      fictional model and firmware, the canary patient in the path, query, cookie and body.

The canaries (CANARY^HTTPPATIENT, CANARY-MRN-HTTP-0001, birth date 19230102) are what
build_manifest.py lists and the fixture test proves never reach ward's output.
"""
import argparse
import http.client
import http.server
import json
import sys

SERVER = "WardTestMed-VitalsHub/3.2.1 (WTM-VH300)"
POWERED_BY = "WardTestMed Embedded Web 1.4"
REALM = "WardTestMed VH-300 Vitals Gateway"
USER_AGENT = "WardTestMed-VitalsMonitor/2.4.1 (VM-240; fw 2.4.1-b17)"
PATIENT = "CANARY^HTTPPATIENT"
MRN = "CANARY-MRN-HTTP-0001"
DOB = "19230102"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return SERVER

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.command, args[1] if len(args) > 1 else ""))

    def _reply(self, code, body, extra=()):
        self.send_response(code)
        self.send_header("X-Powered-By", POWERED_BY)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        if not self.headers.get("Authorization"):
            self._reply(401, b'{"error":"login required"}',
                        [("WWW-Authenticate", 'Basic realm="%s", charset="UTF-8"' % REALM)])
            return
        body = json.dumps({"patient": PATIENT, "mrn": MRN, "birth_date": DOB,
                           "spo2": 97, "hr": 72}).encode()
        self._reply(200, body, [("Set-Cookie", "last_mrn=%s; HttpOnly" % MRN)])

    do_GET = do_POST = _handle


def server(args):
    httpd = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    print("ready", flush=True)
    httpd.serve_forever()


def client(args):
    conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
    body = json.dumps({"patient": PATIENT, "mrn": MRN, "birth_date": DOB,
                       "obs": [{"code": "MDC_PULS_OXIM_SAT_O2", "value": 97}]}).encode()
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json",
               "Cookie": "patient=%s; mrn=%s" % (PATIENT, MRN),
               "Authorization": "Basic d2FyZDp3YXJk"}
    conn.request("POST", "/api/v1/patients/%s/vitals?name=%s&dob=%s" % (MRN, "CANARY%5EHTTPPATIENT", DOB),
                 body=body, headers=headers)
    r = conn.getresponse()
    r.read()
    print("status", r.status, flush=True)
    conn.close()
    return 0 if r.status == 200 else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    return server(args) if args.role == "server" else client(args)


if __name__ == "__main__":
    sys.exit(main())
