#!/usr/bin/env python3
"""HL7 FHIR R4 REST peers for the ward fixture captures (see generate.sh, scenario_fhir).

  fhir_peers.py server --host IP --port N
      A minimal FHIR server (no TLS, as a misconfigured one would be): it stores what is
      POSTed and answers 201 with the resource and an id, GET <type>/<id> with the stored
      resource, and GET Device?... with a searchset Bundle. Content-Type application/fhir+json.

  fhir_peers.py client --host IP --port N
      A fictional infusion pump ("WardTestMed WTP-700") talking to that server over one
      keep-alive connection: it registers its own Device resource (manufacturer, model number,
      serial, firmware version, UDI carrier), posts a Patient and an Observation carrying the
      canary patient, reads the Patient back and searches Devices (a Bundle in the response).

Shapes follow the HL7 FHIR R4 examples (hl7.org/fhir/R4/device-example.json,
patient-example.json, observation-example.json). The canaries (CANARYFHIR^PATIENT,
CANARY-MRN-FHIR-0001, birth date 1923-03-04, the observation value 12.3456) are what
build_manifest.py lists and the fixture test proves never reach ward's output.
"""
import argparse
import http.client
import http.server
import json
import sys

FHIR_JSON = "application/fhir+json; charset=utf-8"
DEVICE = {
    "resourceType": "Device",
    "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.0", "value": "WTP7-000077"}],
    "udiCarrier": [{
        "deviceIdentifier": "00857674005079",
        "issuer": "http://hl7.org/fhir/NamingSystem/gs1-di",
        "carrierHRF": "(01)00857674005079(21)WTP7-000077",
    }],
    "status": "active",
    "manufacturer": "WardTestMed",
    "serialNumber": "WTP7-000077",
    "deviceName": [{"name": "WardTestMed WTP-700 Infusion Pump", "type": "manufacturer-name"}],
    "modelNumber": "WTP-700",
    "version": [{"type": {"text": "firmware"}, "value": "7.4.2"}],
}
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "CANARY-MRN-FHIR-0001"}],
    "name": [{"family": "CANARYFHIR", "given": ["PATIENT"], "text": "CANARYFHIR^PATIENT"}],
    "birthDate": "1923-03-04",
    # Member names a careless extractor might take for a device's: never read in a Patient.
    "manufacturer": "CANARYFHIR^PATIENT",
}
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "urn:iso:std:iso:11073:10101", "code": "150456",
                          "display": "MDC_PULS_OXIM_SAT_O2"}]},
    "subject": {"reference": "Patient/CANARY-MRN-FHIR-0001", "display": "CANARYFHIR^PATIENT"},
    "device": {"reference": "Device/1"},
    "valueQuantity": {"value": 12.3456, "unit": "%"},
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store = {}

    def version_string(self):
        return "WardTestFHIR/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s\n" % (fmt % args))

    def _reply(self, code, resource):
        body = json.dumps(resource).encode()
        self.send_response(code)
        self.send_header("Content-Type", FHIR_JSON)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        resource = json.loads(self.rfile.read(n))
        kind = resource.get("resourceType", "")
        rid = str(len(self.store) + 1)
        resource["id"] = rid
        self.store[(kind, rid)] = resource
        self._reply(201, resource)

    def do_GET(self):
        path = self.path.split("?", 1)[0].strip("/").split("/")
        if len(path) == 2 and tuple(path) in self.store:
            self._reply(200, self.store[tuple(path)])
        elif path == ["Device"]:
            entries = [{"resource": r} for (k, _), r in self.store.items() if k == "Device"]
            self._reply(200, {"resourceType": "Bundle", "type": "searchset",
                              "total": len(entries), "entry": entries})
        else:
            self._reply(404, {"resourceType": "OperationOutcome",
                              "issue": [{"severity": "error", "code": "not-found"}]})


def client(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Content-Type": FHIR_JSON, "Accept": "application/fhir+json",
               "User-Agent": "WardTestMed-WTP700/7.4.2"}
    ids = {}
    for resource in (DEVICE, PATIENT, OBSERVATION):
        conn.request("POST", "/" + resource["resourceType"], json.dumps(resource), headers)
        r = conn.getresponse()
        answer = json.loads(r.read())
        print("POST %s %d" % (resource["resourceType"], r.status))
        ids[resource["resourceType"]] = answer["id"]
    conn.request("GET", "/Patient/%s?_format=json&name=CANARYFHIR" % ids["Patient"],
                 headers={"Accept": "application/fhir+json"})
    r = conn.getresponse()
    r.read()
    print("GET Patient %d" % r.status)
    conn.request("GET", "/Device?manufacturer=WardTestMed", headers={"Accept": "application/fhir+json"})
    r = conn.getresponse()
    bundle = json.loads(r.read())
    print("GET Device %d %d" % (r.status, bundle["total"]))
    conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    if a.role == "server":
        http.server.ThreadingHTTPServer((a.host, a.port), Handler).serve_forever()
    else:
        client(a.host, a.port)


if __name__ == "__main__":
    main()
