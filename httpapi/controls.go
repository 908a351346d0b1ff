package httpapi

import (
	"errors"
	"net/http"

	"github.com/gather-go/gather/queue"
)

// Controls are the queue controls that the workers and the scheduler of a
// server's program run with, shown read-only by GET /v1/controls so that an
// operator sees the limits in force. The server enforces none of them: the
// workers and the scheduler do. The zero value shows none.
type Controls struct {
	// Limits are the workers' WorkerConfig.GlobalLimits.
	Limits []queue.GlobalLimit
	// Rates are the workers' WorkerConfig.GlobalRates.
	Rates []queue.GlobalRate
	// Schedules are the periodic tasks the program's scheduler enqueues.
	Schedules []ScheduleInfo
}

// ScheduleInfo describes a periodic task (see queue.Scheduler) for
// GET /v1/controls.
type ScheduleInfo struct {
	// Name is the schedule's name, as given to queue.Periodic.
	Name string `json:"name"`
	// Every is the interval of an interval schedule, as
	// time.Duration.String spells it; empty for a cron schedule.
	Every string `json:"every,omitempty"`
	// Cron is the five-field expression of a cron schedule; empty for an
	// interval schedule.
	Cron string `json:"cron,omitempty"`
	// TZ is the time zone a cron expression is read in (such as
	// "Europe/Paris"); empty means UTC.
	TZ string `json:"tz,omitempty"`
	// Kind and Queue are where each tick's task goes.
	Kind  string `json:"kind"`
	Queue string `json:"queue"`
}

type limitJSON struct {
	Queue string `json:"queue"`
	Kind  string `json:"kind,omitempty"`
	Max   int    `json:"max"`
}

type rateJSON struct {
	Queue     string  `json:"queue"`
	Kind      string  `json:"kind,omitempty"`
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
}

type controlsJSON struct {
	Limits    []limitJSON    `json:"limits"`
	Rates     []rateJSON     `json:"rates"`
	Schedules []ScheduleInfo `json:"schedules"`
	// Pause says whether the broker can pause queues (POST
	// /v1/queues/{name}/pause).
	Pause bool `json:"pause"`
}

// getControls shows Config.Controls.
func (s *Server) getControls(w http.ResponseWriter, r *http.Request) error {
	out := controlsJSON{Limits: []limitJSON{}, Rates: []rateJSON{}, Schedules: []ScheduleInfo{}}
	for _, l := range s.controls.Limits {
		out.Limits = append(out.Limits, limitJSON{l.Queue, l.Kind, l.Max})
	}
	for _, rt := range s.controls.Rates {
		out.Rates = append(out.Rates, rateJSON{rt.Queue, rt.Kind, rt.PerSecond, max(rt.Burst, 1)})
	}
	out.Schedules = append(out.Schedules, s.controls.Schedules...)
	_, out.Pause = s.broker.(queue.Pauser)
	return writeJSON(w, http.StatusOK, out)
}

// pauseQueue and resumeQueue pause and resume the queue {name} for every
// worker of the broker.
func (s *Server) pauseQueue(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, true)
}

func (s *Server) resumeQueue(w http.ResponseWriter, r *http.Request) error {
	return s.setPaused(w, r, false)
}

func (s *Server) setPaused(w http.ResponseWriter, r *http.Request, pause bool) error {
	name := r.PathValue("name")
	if err := queue.CheckName("queue", name); err != nil {
		return problem(http.StatusBadRequest, CodeMalformed, "%v", err)
	}
	p, ok := s.broker.(queue.Pauser)
	if !ok {
		return problem(http.StatusNotImplemented, CodeUnsupported, "this broker (%T) cannot pause queues", s.broker)
	}
	op, set := "resuming", p.Resume
	if pause {
		op, set = "pausing", p.Pause
	}
	if err := set(r.Context(), name); err != nil {
		if errors.Is(err, queue.ErrBadInput) {
			return problem(http.StatusBadRequest, CodeMalformed, "%v", err)
		}
		return problem(http.StatusServiceUnavailable, CodeBrokerDown, "%s queue %s: %v", op, name, err)
	}
	s.log.InfoContext(r.Context(), op+" queue", "queue", name, "remote", r.RemoteAddr)
	return writeJSON(w, http.StatusOK, struct {
		Name   string `json:"name"`
		Paused bool   `json:"paused"`
	}{name, pause})
}

// pausedOf reports whether the queue is paused, or nil when the broker
// cannot pause queues.
func (s *Server) pausedOf(r *http.Request, name string) (*bool, error) {
	p, ok := s.broker.(queue.Pauser)
	if !ok {
		return nil, nil
	}
	paused, err := p.Paused(r.Context(), name)
	if err != nil {
		return nil, err
	}
	return &paused, nil
}
