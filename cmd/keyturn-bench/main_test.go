package main

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBucketsCoverEveryValue(t *testing.T) {
	// Every value falls in a bucket whose highest value is >= it, within
	// 1/64 of it, and buckets are monotonic.
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 130, 255, 256, 1000, 1 << 20, 123456789, maxValue} {
		i := bucketOf(v)
		if i < prev || i >= maxBuckets {
			t.Fatalf("bucketOf(%d) = %d (previous %d, max %d)", v, i, prev, maxBuckets)
		}
		prev = i
		hi := bucketHigh(i)
		if hi < v || float64(hi-v) > float64(v)/64+1 {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d: want within 1/64 above", v, hi)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("value %d also fits bucket %d (high %d)", v, i-1, bucketHigh(i-1))
		}
	}
	if bucketOf(maxValue) != maxBuckets-1 {
		t.Errorf("bucketOf(maxValue) = %d, want the last bucket %d", bucketOf(maxValue), maxBuckets-1)
	}
}

func TestPercentileExact(t *testing.T) {
	// Below 128 ns buckets are exact, so nearest rank is exact: of 1..100,
	// p50 is 50, p90 is 90, p99 is 99, p100 is 100.
	h := newHistogram()
	for _, v := range rand.New(rand.NewPCG(1, 2)).Perm(100) {
		h.record(time.Duration(v + 1))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}, {0.1, 1}, {1, 1}} {
		if got := h.percentile(tc.p); got != tc.want {
			t.Errorf("p%v = %d, want %d", tc.p, got, tc.want)
		}
	}
	if h.maximum() != 100 || h.mean() != 50 { // mean of 1..100 is 50.5, truncated
		t.Errorf("max %d mean %d, want 100 and 50", h.maximum(), h.mean())
	}
}

func TestPercentileSmallSamples(t *testing.T) {
	h := newHistogram()
	if h.percentile(99) != 0 || h.maximum() != 0 || h.mean() != 0 {
		t.Fatal("empty histogram: want zeros")
	}
	h.record(7 * time.Millisecond)
	for _, p := range []float64{1, 50, 99, 100} {
		// One sample: every percentile is that sample (clamped to the
		// recorded range, not the bucket's upper edge).
		if got := h.percentile(p); got != 7*time.Millisecond {
			t.Errorf("one sample: p%v = %v, want 7ms", p, got)
		}
	}
	h.record(time.Millisecond)
	if got := h.percentile(50); got < time.Millisecond || got > time.Millisecond+time.Millisecond/64 {
		t.Errorf("two samples: p50 = %v, want 1ms (the lower one: nearest rank 1 of 2)", got)
	}
	if got := h.percentile(51); got != 7*time.Millisecond {
		t.Errorf("two samples: p51 = %v, want 7ms", got)
	}
}

func TestPercentileAgainstSort(t *testing.T) {
	// Against exact nearest-rank percentiles of a sorted copy, the
	// histogram is never below and at most one bucket (1/64) above.
	rng := rand.New(rand.NewPCG(3, 4))
	var vals []time.Duration
	a, b := newHistogram(), newHistogram()
	for i := range 100_000 {
		// Log-normal-ish latencies between ~100µs and ~1s.
		v := time.Duration(float64(100*time.Microsecond) * (1 + rng.ExpFloat64()*rng.ExpFloat64()*50))
		vals = append(vals, v)
		if i%2 == 0 { // two workers, merged
			a.record(v)
		} else {
			b.record(v)
		}
	}
	a.merge(b)
	a.merge(newHistogram()) // an empty one changes nothing
	slices.Sort(vals)
	for _, p := range []float64{50, 90, 99, 99.9} {
		rank := int(float64(len(vals))*p/100+0.999999) - 1
		want := vals[rank]
		got := a.percentile(p)
		if got < want || float64(got-want) > float64(want)/64 {
			t.Errorf("p%v = %v, exact %v: want within +1/64", p, got, want)
		}
	}
	if a.maximum() != vals[len(vals)-1] {
		t.Errorf("max %v, want %v", a.maximum(), vals[len(vals)-1])
	}
	if a.n != uint64(len(vals)) {
		t.Errorf("n = %d after merge, want %d", a.n, len(vals))
	}
}

func TestPickOpBlend(t *testing.T) {
	var got [numOps]int
	for n := range 100 {
		got[pickOp(n)]++
	}
	if got != mixedWeights {
		t.Fatalf("blend over 0..99 = %v, want %v", got, mixedWeights)
	}
	sum := 0
	for _, w := range mixedWeights {
		sum += w
	}
	if sum != 100 {
		t.Fatalf("weights sum to %d, want 100", sum)
	}
}

func parse(t *testing.T, env map[string]string, args ...string) (settings, error) {
	t.Helper()
	var stderr bytes.Buffer
	return parseArgs(args, func(k string) string { return env[k] }, &stderr)
}

func TestArgumentValidation(t *testing.T) {
	ok := []string{"-client-id", "bench", "-username", "ada", "-password", "pw"}
	with := func(extra ...string) []string { return append(slices.Clone(ok), extra...) }
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" = valid
	}{
		{"defaults", ok, ""},
		{"ten minutes", with("-d", "10m"), ""},
		{"over ten minutes", with("-d", "10m1s"), "-allow-long"},
		{"long allowed", with("-d", "2h", "-allow-long"), ""},
		{"over a day even so", with("-d", "25h", "-allow-long"), "over 24h"},
		{"negative duration", with("-d", "-1s"), "negative"},
		{"count only", with("-d", "0", "-n", "100"), ""},
		{"neither", with("-d", "0"), "both 0"},
		{"negative count", with("-n", "-5"), "negative"},
		{"no concurrency", with("-c", "0"), "-c: 0"},
		{"too much concurrency", with("-c", "5000"), "-c: 5000"},
		{"unknown scenario", with("-scenario", "implicit"), "unknown"},
		{"remote host", with("-url", "http://example.com"), "not a loopback"},
		{"remote IP", with("-url", "http://10.0.0.1:8080"), "not a loopback"},
		{"remote allowed", with("-url", "https://example.com", "-allow-remote"), ""},
		{"localhost", with("-url", "http://localhost:8080/"), ""},
		{"loopback v6", with("-url", "http://[::1]:8080"), ""},
		{"loopback range", with("-url", "http://127.0.0.2:8080"), ""},
		{"not http", with("-url", "ftp://127.0.0.1"), "http or https"},
		{"credentials in URL", with("-url", "http://u:p@127.0.0.1"), "without user"},
		{"two instances", with("-url", "http://127.0.0.1:8080,http://127.0.0.1:8081/"), ""},
		{"one of two remote", with("-url", "http://127.0.0.1:8080,http://10.0.0.1:8080"), "not a loopback"},
		{"empty instance", with("-url", "http://127.0.0.1:8080,"), "-url"},
		{"seeded", []string{"-client-id", "bench", "-seed-sessions", "100", "-config", "k.yaml"}, ""},
		{"seeded mixed needs a user", []string{"-client-id", "bench", "-scenario", "mixed", "-seed-sessions", "100", "-config", "k.yaml"}, "-username"},
		{"seeding needs the config", with("-seed-sessions", "100"), "needs -config"},
		{"config without seeding", with("-config", "k.yaml"), "only with -seed-sessions"},
		{"seeding a scenario without sessions", with("-scenario", "introspect", "-seed-sessions", "100", "-config", "k.yaml"), "uses no sessions"},
		{"fewer seeded sessions than workers", with("-c", "8", "-seed-sessions", "4", "-config", "k.yaml"), "-seed-sessions: 4"},
		{"too many seeded sessions", with("-seed-sessions", "1000001", "-config", "k.yaml"), "-seed-sessions: 1000001"},
		{"seeded and logged-in sessions", with("-sessions", "20", "-seed-sessions", "100", "-config", "k.yaml"), "give one"},
		{"fewer sessions than workers", with("-c", "8", "-sessions", "4"), "fewer than -c"},
		{"sessions for password are unused", with("-scenario", "password", "-c", "8", "-sessions", "4"), ""},
		{"no client", []string{"-username", "ada", "-password", "pw"}, "-client-id: required"},
		{"no user", []string{"-client-id", "bench"}, "-username"},
		{"client_credentials needs no user", []string{"-client-id", "svc", "-scenario", "client_credentials"}, ""},
		{"bad timeout", with("-timeout", "0s"), "-timeout"},
		{"bad tokens", with("-tokens", "0"), "-tokens"},
		{"bad users", with("-users", "0"), "-users"},
		{"negative pid", with("-pid", "-1"), "-pid"},
		{"signal without pid", with("-signal-after-setup"), "needs -pid"},
		{"stray argument", with("extra"), "unexpected argument"},
		{"hash timing needs nothing else", []string{"-measure-hash", "3"}, ""},
		{"hash timing bounded", []string{"-measure-hash", "5000"}, "-measure-hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, nil, tc.args...)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestArgumentDefaults(t *testing.T) {
	env := map[string]string{envClientSecret: "s", envPassword: "pw", envIntrospectSecret: "rs-s"}
	c, err := parse(t, env, "-client-id", "bench", "-username", "ada", "-c", "8", "-url", "http://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret != "s" || c.Password != "pw" {
		t.Errorf("secrets from the environment: %q %q", c.ClientSecret, c.Password)
	}
	if c.Sessions != 8 {
		t.Errorf("sessions default to -c: got %d", c.Sessions)
	}
	if c.IntrospectID != "bench" || c.IntrospectSecret != "rs-s" {
		t.Errorf("introspect client defaults to the token client: %q %q", c.IntrospectID, c.IntrospectSecret)
	}
	if c.URL != "http://127.0.0.1:9" || len(c.URLs) != 1 || c.URLs[0] != c.URL {
		t.Errorf("URL %q, URLs %q: want the trailing slash trimmed", c.URL, c.URLs)
	}
	if c.deadline() != 15*time.Second {
		t.Errorf("deadline %v, want the default -d 15s", c.deadline())
	}

	// A flag overrides the environment; -n alone is still bounded in time.
	c, err = parse(t, env, "-client-id", "bench", "-client-secret", "flag", "-username", "ada", "-d", "0", "-n", "10")
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret != "flag" || c.IntrospectSecret != "rs-s" {
		t.Errorf("secrets: %q %q", c.ClientSecret, c.IntrospectSecret)
	}
	if c.deadline() != maxDuration {
		t.Errorf("-n alone: deadline %v, want the %v cap", c.deadline(), maxDuration)
	}

	if _, err := parse(t, nil, "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestRunExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-url", "http://example.com", "-client-id", "x", "-scenario", "client_credentials"},
		func(string) string { return "" }, &stdout, &stderr); code != 2 {
		t.Fatalf("remote target: exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "not a loopback") {
		t.Errorf("stderr: %s", stderr.String())
	}
	// Nothing listens on port 9 (discard) of loopback: a failed run, exit 1.
	stdout.Reset()
	stderr.Reset()
	code := run([]string{"-url", "http://127.0.0.1:9", "-client-id", "x", "-username", "u", "-password", "p", "-n", "1"},
		func(string) string { return "" }, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "connection refused") {
		t.Fatalf("unreachable server: exit %d, stderr %s", code, stderr.String())
	}
}

func TestProcParsing(t *testing.T) {
	// The command name may contain spaces and parentheses.
	stat := []byte("1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 8 0 100 1000 200 18446744073709551615")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 3*time.Second { // (250 + 50) ticks at 100 Hz
		t.Fatalf("parseStatCPU = %v, %v; want 3s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Error("garbage stat parsed")
	}
	mc, err := parseMachineCPU([]byte("cpu  100 5 50 800 20 1 2 7 30 0\ncpu0 1 2 3\n"))
	if err != nil || mc.busy != 158 || mc.steal != 7 || mc.total != 985 {
		t.Fatalf("parseMachineCPU = %+v, %v; want busy 158 (user+nice+system+irq+softirq), steal 7, total 985 (no guest)", mc, err)
	}
	status := []byte("Name:\tkeyturn\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t8\n")
	rss, hwm, err := parseStatusRSS(status)
	if err != nil || rss != 10<<20 || hwm != 20<<20 {
		t.Fatalf("parseStatusRSS = %d, %d, %v", rss, hwm, err)
	}
	if _, _, err := parseStatusRSS([]byte("Name:\tkthreadd\n")); err == nil {
		t.Error("status without VmRSS parsed")
	}

	// And on this process, for real.
	s, err := startSampler(os.Getpid(), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Burn 50 ms of this process's CPU (not of wall time: a loaded machine
	// may not run us), five clock ticks the sampler must see.
	for start := cpuTime(t); cpuTime(t)-start < 50*time.Millisecond; {
	}
	u := s.finish()
	// VmHWM can trail a VmRSS sample slightly (the kernel batches RSS
	// counters per CPU), so the peak is only checked to be there.
	if u.MaxRSSMiB <= 0 || u.PeakRSSMiB <= 0 || u.RSSSamples < 2 || u.CPUPercent <= 0 || u.Error != "" {
		t.Fatalf("usage of this process: %+v", u)
	}
	if _, err := startSampler(1<<30, time.Second); err == nil {
		t.Error("sampling a process that does not exist: want an error")
	}
}

// cpuTime is the CPU this process has used (user and system).
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
