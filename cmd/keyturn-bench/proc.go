package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat.
// It is 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK)
// would need cgo).
const clockTicks = 100

// procCPU returns the user+system CPU time a process has used so far,
// from /proc/PID/stat (fields 14 and 15, counted after the command name,
// which may itself hold spaces and parentheses).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	// After ") " come field 3 (state) onwards; utime is field 14.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat")
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS returns the resident set size and its peak (VmRSS, VmHWM) from
// /proc/PID/status, in bytes.
func procRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatusRSS(b)
}

func parseStatusRSS(b []byte) (rss, hwm int64, err error) {
	found := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, errors.New("malformed /proc status")
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, errors.New("malformed /proc status")
		}
		if name == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("no VmRSS/VmHWM in /proc status (kernel thread?)")
	}
	return rss, hwm, nil
}

// cpuTimes are the jiffies of all CPUs together, from /proc/stat.
type cpuTimes struct {
	busy, steal, total uint64
}

// machineCPU reads /proc/stat. Steal is time the hypervisor gave to
// someone else: on a virtual machine, a noisy neighbour.
func machineCPU() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(b []byte) (cpuTimes, error) {
	var t cpuTimes
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return t, errors.New("malformed /proc/stat")
	}
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is already counted in user and nice.
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return cpuTimes{}, errors.New("malformed /proc/stat")
		}
		t.total += v
		switch i {
		case 3, 4: // idle, iowait
		case 7:
			t.steal += v
		default:
			t.busy += v
		}
	}
	return t, nil
}

// commandCPU returns the CPU time used so far by every process, summed by
// command name (the comm field of /proc/PID/stat): on a shared machine it
// shows who else was busy during a run. Processes that exit in between are
// missed, so it is a lower bound.
func commandCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		cpu, err := parseStatCPU(b)
		if err != nil {
			continue
		}
		out[string(b[open+1:end])] += cpu
	}
	return out
}

// sampler watches a process during a run: CPU time at start and end, and
// RSS every interval, whose maximum is reported. It also measures this
// process (the load tool shares the machine) and the whole machine.
type sampler struct {
	pid      int
	interval time.Duration

	mu      sync.Mutex
	maxRSS  int64
	samples int
	err     error

	start, startSelf time.Duration
	startCPU         cpuTimes
	startWall        time.Time
	startCommands    map[string]time.Duration
	stop             chan struct{}
	done             chan struct{}
}

// usage is what a sampler measured.
type usage struct {
	PID            int     `json:"pid,omitempty"`
	CPUPercent     float64 `json:"cpu_percent"`               // of one core; the machine has NumCPU*100
	MaxRSSMiB      float64 `json:"max_rss_mib,omitempty"`     // largest VmRSS sampled during the run
	PeakRSSMiB     float64 `json:"peak_rss_mib,omitempty"`    // VmHWM at the end: the peak since the process started
	RSSSamples     int     `json:"rss_samples,omitempty"`     // how many RSS samples were taken
	SelfCPUPercent float64 `json:"load_tool_cpu_percent"`     // this process, of one core
	MachinePercent float64 `json:"machine_cpu_busy_percent"`  // all cores together, 100 = every core busy
	StealPercent   float64 `json:"machine_cpu_steal_percent"` // taken by the hypervisor for other machines
	// CommandPercent is CPU by command name over the run (100 = one core),
	// the busiest first: the server, the database, this tool, and anyone
	// else who shared the machine.
	CommandPercent []commandShare `json:"cpu_by_command,omitempty"`
	Error          string         `json:"error,omitempty"`
}

type commandShare struct {
	Command    string  `json:"command"`
	CPUPercent float64 `json:"cpu_percent"`
}

// startSampler begins sampling pid (0: only this process and the machine).
func startSampler(pid int, interval time.Duration) (*sampler, error) {
	s := &sampler{pid: pid, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if pid > 0 {
		if s.start, err = procCPU(pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", pid, err)
		}
		if _, _, err = procRSS(pid); err != nil {
			return nil, fmt.Errorf("-pid %d: %w", pid, err)
		}
	}
	s.startSelf, _ = procCPU(os.Getpid())
	s.startCPU, _ = machineCPU()
	s.startCommands = commandCPU()
	s.startWall = time.Now()
	go s.loop()
	return s, nil
}

func (s *sampler) loop() {
	defer close(s.done)
	if s.pid <= 0 {
		<-s.stop
		return
	}
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.sample()
	for {
		select {
		case <-s.stop:
			s.sample()
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *sampler) sample() {
	rss, _, err := procRSS(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.maxRSS = max(s.maxRSS, rss)
	s.samples++
}

// finish stops sampling and returns the usage over the sampled interval.
func (s *sampler) finish() usage {
	close(s.stop)
	<-s.done
	wall := time.Since(s.startWall)
	u := usage{PID: s.pid}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	if self, err := procCPU(os.Getpid()); err == nil {
		u.SelfCPUPercent = pct(self - s.startSelf)
	}
	if t, err := machineCPU(); err == nil && t.total > s.startCPU.total {
		total := float64(t.total - s.startCPU.total)
		u.MachinePercent = 100 * float64(t.busy-s.startCPU.busy) / total
		u.StealPercent = 100 * float64(t.steal-s.startCPU.steal) / total
	}
	for name, cpu := range commandCPU() {
		if p := pct(cpu - s.startCommands[name]); p >= 1 {
			u.CommandPercent = append(u.CommandPercent, commandShare{Command: name, CPUPercent: math.Round(p)})
		}
	}
	sort.Slice(u.CommandPercent, func(i, j int) bool {
		a, b := u.CommandPercent[i], u.CommandPercent[j]
		return a.CPUPercent > b.CPUPercent || a.CPUPercent == b.CPUPercent && a.Command < b.Command
	})
	if s.pid <= 0 {
		return u
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	const mib = 1 << 20
	u.MaxRSSMiB, u.RSSSamples = float64(s.maxRSS)/mib, s.samples
	if _, hwm, err := procRSS(s.pid); err == nil {
		u.PeakRSSMiB = float64(hwm) / mib
	}
	if cpu, err := procCPU(s.pid); err == nil {
		u.CPUPercent = pct(cpu - s.start)
	} else if s.err == nil {
		s.err = err
	}
	if s.err != nil {
		u.Error = s.err.Error()
	}
	return u
}
