package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/keyturn/keyturn/storage/passhash"
)

// print writes the human-readable report.
func (r *result) print(w io.Writer) {
	label := ""
	if r.Label != "" {
		label = "  [" + r.Label + "]"
	}
	fmt.Fprintf(w, "scenario %s  c=%d  %.1fs  %s%s\n", r.Scenario, r.Concurrency, r.Seconds, r.URL, label)
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: the figures cover the run until the signal")
	}
	if r.Setup.Logins > 0 {
		fmt.Fprintf(w, "setup     %d logins (%d sessions, %d access tokens) in %.1fs, not counted\n",
			r.Setup.Logins, r.Setup.Sessions, r.Setup.Tokens, r.Setup.Seconds)
	}
	if r.Setup.Seeded > 0 {
		fmt.Fprintf(w, "seeded    %d sessions in the database in %.1fs, not counted\n", r.Setup.Seeded, r.Setup.SeedSeconds)
	}
	printOp(w, "total", r.Summary)
	if len(r.ByURL) > 0 {
		urls := slices.Sorted(maps.Keys(r.ByURL))
		fmt.Fprint(w, "by instance:")
		for _, u := range urls {
			fmt.Fprintf(w, " %s %d", u, r.ByURL[u])
		}
		fmt.Fprintln(w)
	}
	for _, name := range opNames {
		if o, ok := r.Ops[name]; ok {
			printOp(w, "  "+name, o)
		}
	}
	if len(r.Errors) > 0 {
		fmt.Fprintln(w, "errors by status:")
		printCounts(w, r.ByStatus)
		fmt.Fprintln(w, "errors by code:")
		printCounts(w, r.Errors)
	}
	if r.Relogins > 0 || r.LostSession > 0 {
		fmt.Fprintf(w, "sessions  %d replaced by a new login after a failed refresh, %d given up\n", r.Relogins, r.LostSession)
	}
	u := r.Usage
	if u.PID > 0 {
		fmt.Fprintf(w, "server    pid %d: CPU %.0f%% (100%% = one core), RSS max %.1f MiB during the run (peak since start %.1f MiB, %d samples)\n",
			u.PID, u.CPUPercent, u.MaxRSSMiB, u.PeakRSSMiB, u.RSSSamples)
		if u.Error != "" {
			fmt.Fprintf(w, "          sampling error: %s\n", u.Error)
		}
	}
	fmt.Fprintf(w, "machine   %d CPUs %.0f%% busy, %.0f%% stolen by the hypervisor; this load tool used %.0f%% of one core\n",
		runtime.NumCPU(), u.MachinePercent, u.StealPercent, u.SelfCPUPercent)
	if len(u.CommandPercent) > 0 {
		fmt.Fprint(w, "          CPU by command (100% = one core):")
		for i, c := range u.CommandPercent {
			if i == 8 {
				break
			}
			fmt.Fprintf(w, " %s %.0f%%", c.Command, c.CPUPercent)
		}
		fmt.Fprintln(w)
	}
}

func printOp(w io.Writer, name string, o opResult) {
	fmt.Fprintf(w, "%-22s %8d req %9.1f req/s  ok %8d (%9.1f/s)  errors %d\n", name, o.Requests, o.RPS, o.OK, o.OKRPS, o.Errors)
	fmt.Fprintf(w, "%-22s latency p50 %.2fms  p90 %.2fms  p99 %.2fms  max %.2fms  mean %.2fms\n", "", o.P50ms, o.P90ms, o.P99ms, o.MaxMs, o.MeanMs)
}

func printCounts(w io.Writer, m map[string]int64) {
	keys := slices.Collect(maps.Keys(m))
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	for _, k := range keys {
		fmt.Fprintf(w, "  %-40s %d\n", k, m[k])
	}
}

// hashTime is -measure-hash's report.
type hashTime struct {
	Hashes   int     `json:"hashes"`
	MedianMs float64 `json:"median_ms"`
	MeanMs   float64 `json:"mean_ms"`
	CPUs     int     `json:"cpus"`
	// LimitPerSecond is the password grant's bound: CPUs / one hash's time.
	LimitPerSecond float64 `json:"limit_per_second"`
	// ParallelPerSecond is what CPUs hashes at once actually achieved
	// (memory bandwidth is shared, so it can fall short of the limit).
	ParallelPerSecond float64 `json:"parallel_per_second"`
	Params            string  `json:"params"`
}

// measureHash times n argon2id verifications with passhash.Default, one at
// a time, then n on every CPU at once.
func measureHash(n int) (hashTime, error) {
	p := passhash.Default
	hash, err := passhash.Hash("keyturn-bench password", p)
	if err != nil {
		return hashTime{}, err
	}
	verify := func() error {
		ok, err := passhash.Verify(hash, "keyturn-bench password")
		if err == nil && !ok {
			err = fmt.Errorf("measure hash: verification failed")
		}
		return err
	}
	if err := verify(); err != nil { // warm up: the first allocates 19 MiB
		return hashTime{}, err
	}
	times := make([]time.Duration, n)
	var sum time.Duration
	for i := range times {
		start := time.Now()
		if err := verify(); err != nil {
			return hashTime{}, err
		}
		times[i] = time.Since(start)
		sum += times[i]
	}
	slices.Sort(times)
	median := times[n/2]
	cpus := runtime.NumCPU()

	var wg sync.WaitGroup
	errs := make([]error, cpus)
	start := time.Now()
	for i := range cpus {
		wg.Go(func() {
			for range n {
				if err := verify(); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	parallel := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return hashTime{}, err
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return hashTime{
		Hashes: n, MedianMs: ms(median), MeanMs: ms(sum / time.Duration(n)), CPUs: cpus,
		LimitPerSecond:    float64(cpus) / median.Seconds(),
		ParallelPerSecond: float64(cpus*n) / parallel.Seconds(),
		Params:            fmt.Sprintf("argon2id m=%d KiB, t=%d, p=%d", p.Memory, p.Time, p.Threads),
	}, nil
}

func printHashTime(w io.Writer, n int, asJSON bool) int {
	h, err := measureHash(n)
	if err != nil {
		fmt.Fprintln(w, "keyturn-bench:", err)
		return 1
	}
	if asJSON {
		b, _ := json.MarshalIndent(h, "", "  ")
		fmt.Fprintln(w, string(b))
		return 0
	}
	fmt.Fprintf(w, "%s: median %.1fms, mean %.1fms over %d hashes, one at a time\n", h.Params, h.MedianMs, h.MeanMs, h.Hashes)
	fmt.Fprintf(w, "password-grant limit = %d CPUs / %.1fms = %.1f logins/s (measured with %d hashes at once: %.1f/s)\n",
		h.CPUs, h.MedianMs, h.LimitPerSecond, h.CPUs, h.ParallelPerSecond)
	return 0
}
