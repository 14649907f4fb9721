package server

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/keyturn/keyturn/server/tokens"
)

// requestInfo is what one request learns about itself as it goes, for its
// access-log line and metrics: filled by the handlers, read by instrument.
type requestInfo struct {
	id        string
	clientID  string     // once authenticated
	grantType string     // token endpoint: a known grant type, or "unknown"
	errorCode string     // the OAuth error answered, if any
	addr      netip.Addr // the source address (clientAddr)
	// authFailure is why client authentication failed (a reason label),
	// "" if it did not; authClient is the client id it named, only when
	// that is a registered client.
	authFailure string
	authClient  string
}

type requestInfoKey struct{}

func infoFrom(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	if info == nil {
		return &requestInfo{} // outside instrument (unit tests): a scratch record
	}
	return info
}

// maxRequestIDLen bounds a caller-chosen X-Request-ID: shorter than any
// token we issue, so a client that puts a token there by mistake does not
// get it written to the log.
const maxRequestIDLen = 64

// incomingRequestID keeps a caller's X-Request-ID when it is short and
// made of letters, digits and "-_.:" (it goes into logs), else makes one.
func incomingRequestID(r *http.Request) string {
	id := r.Header.Get("X-Request-ID")
	if id == "" || len(id) > maxRequestIDLen {
		return tokens.NewID()
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.:", c) >= 0) {
			return tokens.NewID()
		}
	}
	return id
}

// loggedPath is the path for the access log: the endpoint's own for known
// routes; for anything else only a prefix, since a client may have put a
// token in a URL it made up.
func loggedPath(endpoint, path string) string {
	if endpoint == "other" {
		return truncate(path, 32)
	}
	return path
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument wraps an endpoint: request id (taken from X-Request-ID or
// made, and echoed), one access-log line with the source address (the
// peer, or what trusted proxies forwarded; see clientAddr), the request
// metrics, and a warning for a failed client authentication. The log lines
// never hold a secret: no query, form, header or token. A timeout above 0
// gives each request a deadline for its database work: an unreachable or
// hanging database then answers 503 quickly (storage maps the deadline to
// ErrUnavailable) instead of piling requests up.
func instrument(endpoint string, timeout time.Duration, d routeDeps, h http.Handler) http.Handler {
	return &instrumented{endpoint: endpoint, metrics: d.metrics.route(endpoint), log: d.log, trusted: d.trusted,
		timeout: timeout, h: h}
}

// instrumented is an endpoint wrapped by instrument.
type instrumented struct {
	endpoint string
	metrics  *routeMetrics
	log      *slog.Logger
	trusted  []netip.Prefix
	timeout  time.Duration // 0: no deadline
	h        http.Handler
}

// requestRecord is what instrument keeps for one request, allocated once.
type requestRecord struct {
	info      requestInfo
	sw        statusWriter
	requestID [1]string // the X-Request-Id header's values
}

func (in *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now() // latency is wall-clock, not the injectable token clock
	rec := &requestRecord{sw: statusWriter{ResponseWriter: w}}
	info, sw := &rec.info, &rec.sw
	info.id, info.addr = incomingRequestID(r), clientAddr(r, in.trusted)
	rec.requestID[0] = info.id
	w.Header()["X-Request-Id"] = rec.requestID[:] // Header.Set without canonicalising the key again
	// One context and one copy of the request for the deadline and the
	// info; the info outermost, as it is looked up more often.
	ctx := r.Context()
	if in.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, in.timeout)
		defer cancel()
	}
	ctx = context.WithValue(ctx, requestInfoKey{}, info)
	in.metrics.inFlight.Inc()
	in.h.ServeHTTP(sw, r.WithContext(ctx))
	in.metrics.inFlight.Dec()
	took := time.Since(start)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	outcome := "ok"
	if info.errorCode != "" {
		outcome = info.errorCode
	} else if sw.status >= 400 {
		outcome = "error"
	}
	o := in.metrics.observers(info.grantType, outcome)
	o.requests.Inc()
	o.duration.Observe(took.Seconds())
	if info.authFailure != "" {
		logAuthFailure(ctx, in.metrics.metrics, in.log, info)
	}
	if in.log.Enabled(ctx, slog.LevelInfo) { // else the line's attributes need not be built
		in.logAccess(ctx, r, sw.status, took, info)
	}
}

// logAccess writes the access-log line. Its attributes are on the stack
// (slog.Record copies them).
func (in *instrumented) logAccess(ctx context.Context, r *http.Request, status int, took time.Duration, info *requestInfo) {
	var buf [8]slog.Attr
	attrs := append(buf[:0],
		slog.String("method", truncate(r.Method, 16)), slog.String("path", loggedPath(in.endpoint, r.URL.Path)),
		slog.Int("status", status), slog.Float64("duration_ms", float64(took.Microseconds())/1000),
		slog.String("addr", info.addr.String()),
	)
	if info.clientID != "" {
		attrs = append(attrs, slog.String("client_id", info.clientID))
	}
	if info.grantType != "" {
		attrs = append(attrs, slog.String("grant_type", info.grantType))
	}
	if info.errorCode != "" {
		attrs = append(attrs, slog.String("error", info.errorCode))
	}
	in.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// logAuthFailure logs and counts a failed client authentication: the
// reason, the client id only when it names a registered client (never
// arbitrary input), and the source address; never the secret.
func logAuthFailure(ctx context.Context, m *metrics, log *slog.Logger, info *requestInfo) {
	m.clientAuthFailures.WithLabelValues(info.authFailure).Inc()
	client := info.authClient
	if client == "" {
		client = "unknown client"
	}
	log.LogAttrs(ctx, slog.LevelWarn, "client authentication failed",
		slog.String("reason", info.authFailure), slog.String("client_id", client), slog.String("addr", info.addr.String()))
}

// requestIDHandler adds the request id to every record logged with a
// request's context, so a reuse warning can be matched to its access line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := infoFrom(ctx).id; id != "" { // "" outside a request
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
