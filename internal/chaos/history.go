package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The files of a history, in the history directory.
const (
	producerFile = "producer.jsonl" // Enqueue and Observation records
	faultsFile   = "faults.jsonl"   // Fault records
	execPrefix   = "exec-"          // "exec-<worker>.log": one line per execution start or end
)

// History is what a run recorded: the producer's enqueues and
// observations, the workers' executions, and the faults injected. Times
// are Unix nanoseconds on the one machine's clock.
type History struct {
	Enqueues     []Enqueue
	Observations []Observation
	Execs        []Exec
	Faults       []Fault
}

// Enqueue is one EnqueueBatch call: task i of the batch has input Base+i
// (inputs are unique across the run), or FailInput(Base+i) for the indices
// in Fail, tasks that fail by design. Err is empty when the batch was
// accepted; Batch is then its ID.
type Enqueue struct {
	Batch string `json:"batch,omitempty"`
	Base  int64  `json:"base"`
	N     int    `json:"n"`
	Fail  []int  `json:"fail,omitempty"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	Err   string `json:"err,omitempty"`
}

// Observation is one await of a batch, in one of the modes below. Err is
// what the await returned; Hang says that it had not ended when its
// deadline came. Results are what it returned: in input order for Await
// and AwaitSettled, in the order received for Results.
type Observation struct {
	Batch   string `json:"batch"`
	Mode    string `json:"mode"`
	Start   int64  `json:"start"`
	End     int64  `json:"end"`
	Err     string `json:"err,omitempty"`
	Hang    bool   `json:"hang,omitempty"`
	Results []Seen `json:"res,omitempty"`
}

// The modes of an Observation.
const (
	ModeAwait         = "await"          // Batch.Await on the enqueuing client
	ModeSettled       = "settled"        // Batch.AwaitSettled on the enqueuing client
	ModeResults       = "results"        // Batch.Results on the enqueuing client
	ModeAttachAwait   = "attach-await"   // Attach on a second connection, then Await
	ModeAttachSettled = "attach-settled" // Attach on a second connection, then AwaitSettled
	ModeAttachResults = "attach-results" // Attach on a second connection, then Results
	ModeFinal         = "final"          // the closing re-read: Attach, then AwaitSettled
)

// Seen is one result an await returned: task I's output value V, made by
// execution X, or its error.
type Seen struct {
	I   int    `json:"i"`
	V   int64  `json:"v,omitempty"`
	X   string `json:"x,omitempty"`
	Err string `json:"err,omitempty"`
}

// Expected is the output a task with input in must return.
func Expected(in int64) int64 { return 2*in + 1 }

// FailInput is the input that makes the task of input in fail by design,
// without retries: its error is FailError(x), x being its execution.
func FailInput(in int64) int64 { return -in - 1 }

// FailError is the error of execution x of a task that fails by design.
func FailError(x string) string { return failPrefix + x + failSuffix }

const failPrefix, failSuffix = "chaos: execution ", " fails by design"

// failedBy returns the execution named by a task's error, and whether the
// error is one FailError made.
func failedBy(err string) (string, bool) {
	i := strings.Index(err, failPrefix)
	if i < 0 {
		return "", false
	}
	x, ok := strings.CutSuffix(err[i+len(failPrefix):], failSuffix)
	return x, ok && x != "" && !strings.Contains(x, " ")
}

// Exec is the start, or the end, of one execution of the task with input
// In (as the task received it: FailInput's for those that fail), by execution X ("<worker>.<n>", unique in the run).
type Exec struct {
	In  int64
	X   string
	T   int64
	End bool
}

// Fault is one fault Run injected, or the recovery from one.
type Fault struct {
	T      int64  `json:"t"`
	Kind   string `json:"kind"`
	Target string `json:"target"`
}

// The kinds of Fault. Only the kills count in the bound on duplicate
// executions; the starts are recorded to read the history by.
const (
	FaultWorkerKill  = "worker-kill"  // a worker process SIGKILLed
	FaultServerKill  = "server-kill"  // the server process SIGKILLed
	FaultNodeKill    = "node-kill"    // one of the cluster's three servers SIGKILLed
	FaultWorkerStart = "worker-start" // a worker started in place of a killed one
	FaultServerStart = "server-start" // the server, or a node, started again on its directory
)

func isKill(kind string) bool {
	return kind == FaultWorkerKill || kind == FaultServerKill || kind == FaultNodeKill
}

// record is one line of the producer's file.
type record struct {
	Enq *Enqueue     `json:"enq,omitempty"`
	Obs *Observation `json:"obs,omitempty"`
}

// jsonLog appends JSON lines to a file, one write per line, so that a line
// is never torn by a concurrent writer or a kill. Safe for concurrent use.
type jsonLog struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

func openLog(path string) (*jsonLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &jsonLog{f: f}, nil
}

func (l *jsonLog) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(append(l.buf[:0], data...), '\n')
	_, err = l.f.Write(l.buf)
	return err
}

func (l *jsonLog) Close() error { return l.f.Close() }

// appendExec formats an execution line: "S <in> <x> <t>" or "E ...".
func appendExec(b []byte, e Exec) []byte {
	if e.End {
		b = append(b, 'E', ' ')
	} else {
		b = append(b, 'S', ' ')
	}
	b = strconv.AppendInt(b, e.In, 10)
	b = append(b, ' ')
	b = append(b, e.X...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.T, 10)
	return append(b, '\n')
}

func parseExec(line string) (Exec, error) {
	f := strings.Fields(line)
	if len(f) != 4 || (f[0] != "S" && f[0] != "E") {
		return Exec{}, fmt.Errorf("execution line %q: want \"S|E <input> <execution> <time>\"", line)
	}
	in, err1 := strconv.ParseInt(f[1], 10, 64)
	t, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return Exec{}, fmt.Errorf("execution line %q: input and time must be integers", line)
	}
	return Exec{In: in, X: f[2], T: t, End: f[0] == "E"}, nil
}

// ReadHistory reads the history a run left in dir. A torn last line of an
// execution file (a worker killed inside write) is skipped; anything else
// that does not parse is an error.
func ReadHistory(dir string) (*History, error) {
	h := &History{}
	if err := readLines(filepath.Join(dir, producerFile), func(line string) error {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		switch {
		case r.Enq != nil:
			h.Enqueues = append(h.Enqueues, *r.Enq)
		case r.Obs != nil:
			h.Observations = append(h.Observations, *r.Obs)
		default:
			return fmt.Errorf("neither an enqueue nor an observation")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := readLines(filepath.Join(dir, faultsFile), func(line string) error {
		var f Fault
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			return err
		}
		h.Faults = append(h.Faults, f)
		return nil
	}); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, execPrefix+"*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		text := string(data)
		if i := strings.LastIndexByte(text, '\n'); i != len(text)-1 {
			text = text[:i+1] // a torn last line
		}
		for line := range strings.Lines(text) {
			e, err := parseExec(line)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Base(name), err)
			}
			h.Execs = append(h.Execs, e)
		}
	}
	return h, nil
}

func readLines(path string, fn func(string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			if line != "" {
				return fmt.Errorf("%s:%d: torn last line", filepath.Base(path), n)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s:%d: %w", filepath.Base(path), n, err)
		}
	}
}
