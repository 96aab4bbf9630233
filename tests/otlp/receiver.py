"""An OTLP/HTTP traces receiver for the tests: decodes what ringway sends with the official
OpenTelemetry protobuf definitions (the opentelemetry-proto package) and prints each export
request as one JSON line on stdout (google.protobuf.json_format). Gzip bodies are inflated.

    python receiver.py [--delay SECONDS]     # prints "listening on 127.0.0.1:PORT" first
"""

import gzip
import http.server
import json
import sys
import time

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

DELAY = 0.0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except Exception as e:  # a body the official definitions cannot read fails the test
            print(json.dumps({"decode_error": str(e)}), flush=True)
            self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        line = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "request": json_format.MessageToDict(req),
        }
        print(json.dumps(line), flush=True)
        if DELAY:
            time.sleep(DELAY)
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def main():
    global DELAY
    if "--delay" in sys.argv:
        DELAY = float(sys.argv[sys.argv.index("--delay") + 1])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
