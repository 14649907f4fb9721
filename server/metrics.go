package server

import (
	"context"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyturn/keyturn/server/keys"
)

// metrics are the server's Prometheus metrics, on a registry of their own.
// Every label has a bounded set of values: endpoints, grant types, OAuth
// error codes and fixed outcome names; never a user, client or token.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec // endpoint, grant_type, outcome
	inFlight prometheus.Gauge
	duration *prometheus.HistogramVec // endpoint, grant_type
	refresh  *prometheus.CounterVec   // outcome
	logins   *prometheus.CounterVec   // outcome
	codes    *prometheus.CounterVec   // outcome
	// clientAuthFailures counts failed client authentications by reason
	// (the auth* constants in request.go).
	clientAuthFailures *prometheus.CounterVec
	// pkceReuse counts PKCE challenges a client used again within ten
	// minutes (RFC 9700 §2.1.1); the log names the client.
	pkceReuse prometheus.Counter
}

// Refresh outcomes.
const (
	refreshRotated    = "rotated"
	refreshGraceRetry = "grace_retry"
	refreshReuse      = "reuse_detected"
	refreshExpired    = "expired"
	refreshRevoked    = "revoked"
	refreshInvalid    = "invalid" // malformed, unknown, forged, another client's
)

// Authorization code redemption outcomes.
const (
	codeRedeemed = "redeemed"
	codeReplayed = "replayed" // used again: the session it started was revoked
	codeExpired  = "expired"
	codeInvalid  = "invalid" // unknown, another client's, wrong redirect_uri or verifier, user gone
)

// Login (password grant) outcomes.
const (
	loginOK        = "ok"
	loginFailed    = "invalid_credentials"
	loginThrottled = "throttled"
	loginShed      = "shed"
)

func newMetrics(keys *keys.Keys, extra []prometheus.Collector) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyturn_http_requests_total",
			Help: "HTTP requests by endpoint, grant type and outcome (ok, or the OAuth error code).",
		}, []string{"endpoint", "grant_type", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyturn_http_requests_in_flight",
			Help: "Requests being served now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyturn_http_request_duration_seconds",
			Help:    "HTTP request latency by endpoint and grant type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint", "grant_type"}),
		refresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyturn_refresh_total",
			Help: "Refresh-token grants by outcome: rotated, grace_retry, reuse_detected, expired, revoked, invalid.",
		}, []string{"outcome"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyturn_password_logins_total",
			Help: "Password-grant logins by outcome: ok, invalid_credentials, throttled (429), shed (503).",
		}, []string{"outcome"}),
		codes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyturn_code_redemptions_total",
			Help: "Authorization-code grants by outcome: redeemed, replayed (the session the code started was revoked), expired, invalid.",
		}, []string{"outcome"}),
		clientAuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyturn_client_auth_failures_total",
			Help: "Failed client authentications by reason: missing, malformed, unknown_client, wrong_secret, no_secret, public_client_secret, busy, throttled, error.",
		}, []string{"reason"}),
		pkceReuse: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyturn_pkce_challenge_reuse_total",
			Help: "Authorization codes issued for a PKCE code_challenge its client had used within 10 minutes (this instance).",
		}),
	}
	m.registry.MustRegister(m.requests, m.inFlight, m.duration, m.refresh, m.logins, m.codes, m.clientAuthFailures, m.pkceReuse,
		&keyCollector{keys: keys},
	)
	m.registry.MustRegister(extra...)
	return m
}

// routeMetrics are one endpoint's request metrics, each label set resolved
// once: WithLabelValues hashes and looks up its labels on every call, while
// an endpoint sees only a handful of grant types and outcomes. A label set
// is resolved on its first request, so /metrics lists the same series as
// with WithLabelValues per request.
type routeMetrics struct {
	*metrics
	endpoint string
	mu       sync.Mutex // serialises additions to resolved
	// resolved is copied on write: requests read it without a lock.
	resolved atomic.Pointer[map[routeLabels]routeObservers]
}

type routeLabels struct{ grantType, outcome string }

// routeObservers are the series of one endpoint, grant type and outcome.
type routeObservers struct {
	requests prometheus.Counter  // keyturn_http_requests_total
	duration prometheus.Observer // keyturn_http_request_duration_seconds
}

func (m *metrics) route(endpoint string) *routeMetrics {
	return &routeMetrics{metrics: m, endpoint: endpoint}
}

// observers returns the series for a request's grant type and outcome.
func (rm *routeMetrics) observers(grantType, outcome string) routeObservers {
	l := routeLabels{grantType, outcome}
	if p := rm.resolved.Load(); p != nil {
		if o, ok := (*p)[l]; ok {
			return o
		}
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	old := rm.resolved.Load()
	if old != nil {
		if o, ok := (*old)[l]; ok {
			return o
		}
	}
	o := routeObservers{
		requests: rm.requests.WithLabelValues(rm.endpoint, grantType, outcome),
		duration: rm.duration.WithLabelValues(rm.endpoint, grantType),
	}
	next := map[routeLabels]routeObservers{l: o}
	if old != nil {
		maps.Copy(next, *old)
	}
	rm.resolved.Store(&next)
	return o
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// keyCollector reports the signing keys from the Keys cache (a scrape
// reads the database only when the cache is due, like a request would).
type keyCollector struct {
	keys *keys.Keys
}

var (
	keyAgeDesc = prometheus.NewDesc("keyturn_signing_key_age_seconds",
		"Seconds since the signing key now in use started signing.", nil, nil)
	keyCountDesc = prometheus.NewDesc("keyturn_signing_keys_published",
		"Signing keys published in the JWKS.", nil, nil)
)

func (c *keyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- keyAgeDesc; ch <- keyCountDesc }

func (c *keyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if age, err := c.keys.SigningKeyAge(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(keyAgeDesc, prometheus.GaugeValue, age.Seconds())
	}
	if pub, err := c.keys.Published(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(keyCountDesc, prometheus.GaugeValue, float64(len(pub)))
	}
}
