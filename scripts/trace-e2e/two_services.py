"""A two-service program traced by real client libraries, for scripts/it/trace.sh.

`productpage` handles three requests and calls `reviews` for each; the third call fails
inside `reviews` (an exception, so one error span). Mode `ddtrace` uses Datadog's tracer
(its API version comes from DD_TRACE_API_VERSION; v0.5 by default in ddtrace 4.x), mode
`zipkin` uses the OpenTelemetry SDK with the Zipkin JSON exporter, one provider per
service, the context propagated from productpage's CLIENT span to reviews' SERVER span.
"""
import sys
import time


def run_ddtrace():
    from ddtrace.trace import tracer

    for i in range(3):
        with tracer.trace("http.request", service="productpage", resource="GET /productpage", span_type="web") as root:
            root.set_tag("span.kind", "server")
            root.set_tag("http.status_code", "200")
            with tracer.trace("http.client", service="productpage", resource="GET /reviews") as client:
                client.set_tag("span.kind", "client")
                client.set_tag("peer.service", "reviews")
                try:
                    with tracer.trace("http.request", service="reviews", resource="GET /reviews/{id}", span_type="web") as srv:
                        srv.set_tag("span.kind", "server")
                        time.sleep(0.002)
                        if i == 2:
                            srv.set_tag("http.status_code", "503")
                            raise RuntimeError("ratings unavailable")
                        srv.set_tag("http.status_code", "200")
                except RuntimeError:
                    pass
    tracer.flush()
    tracer.shutdown()


def run_zipkin(endpoint):
    from opentelemetry import trace
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    def provider(service):
        p = TracerProvider(resource=Resource.create({"service.name": service}))
        p.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=endpoint)))
        return p

    pp, rv = provider("productpage"), provider("reviews")
    t_pp, t_rv = pp.get_tracer("meshmon.e2e"), rv.get_tracer("meshmon.e2e")
    for i in range(3):
        with t_pp.start_as_current_span("GET /productpage", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.status_code", 200)
            with t_pp.start_as_current_span("GET /reviews", kind=SpanKind.CLIENT) as client:
                ctx = trace.set_span_in_context(client)
                with t_rv.start_as_current_span("GET /reviews/{id}", context=ctx, kind=SpanKind.SERVER) as srv:
                    time.sleep(0.002)
                    if i == 2:
                        srv.set_attribute("http.status_code", 503)
                        srv.set_status(Status(StatusCode.ERROR, "ratings unavailable"))
                    else:
                        srv.set_attribute("http.status_code", 200)
    pp.shutdown()
    rv.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "ddtrace":
        run_ddtrace()
    else:
        run_zipkin(sys.argv[2])
