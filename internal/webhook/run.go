package webhook

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
)

// Run delivers events to every webhook until ctx is done, then waits for
// its delivery goroutines to save their cursors and stop, and returns ctx's
// error. Each webhook has its own goroutine, so a slow or failing endpoint
// never delays another; the set follows the store (read again every
// RelistInterval, and at once after Create and Delete). Store errors are
// logged and retried, never returned. Only one Run may be active at a time.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("webhook: run: already running")
	}
	s.running = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		s.client.CloseIdleConnections()
		s.mu.Lock()
		s.running = false
		clear(s.deliverers)
		s.mu.Unlock()
	}()

	// Subscribe before the first delivery goroutine reads the log, so that
	// no event stored after that read misses its wake-up.
	if s.hub != nil {
		sub, err := s.subscribe(ctx)
		if err != nil && !errors.Is(err, event.ErrClosed) {
			s.log.Error("webhook: subscribe to events; falling back to polling until it succeeds", "err", err)
		}
		if !errors.Is(err, event.ErrClosed) {
			wg.Go(func() { s.watch(ctx, sub) })
		}
	}

	relist := time.NewTicker(s.opts.RelistInterval)
	defer relist.Stop()
	for {
		s.reconcile(ctx, &wg)
		select {
		case <-relist.C:
		case <-s.relist:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// reconcile starts a delivery goroutine for every stored webhook that has
// none and stops those of webhooks no longer stored.
func (s *Service) reconcile(ctx context.Context, wg *sync.WaitGroup) {
	ws, err := s.st.ListWebhooks(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("webhook: list webhooks", "err", err)
		}
		return
	}
	listed := make(map[string]bool, len(ws))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		listed[w.ID] = true
		// A goroutine that stopped on its own stopped because its webhook
		// was deleted (a list read before that may still hold it): it is
		// never started again.
		if s.deliverers[w.ID] != nil {
			continue
		}
		dctx, cancel := context.WithCancel(ctx)
		d := newDeliverer(s, w, cancel)
		s.deliverers[w.ID] = d
		wg.Go(func() { d.run(dctx) })
	}
	for id, d := range s.deliverers {
		if !listed[id] {
			d.cancel()
			delete(s.deliverers, id)
		}
	}
}

// subscribe follows every stored event from now on.
func (s *Service) subscribe(ctx context.Context) (*event.Subscription, error) {
	sub, err := s.hub.Subscribe(ctx, event.Filter{}, -1)
	if err != nil {
		return nil, fmt.Errorf("webhook: subscribe: %w", err)
	}
	return sub, nil
}

// watch wakes the delivery goroutines of the webhooks that match each new
// event, re-subscribing when the subscription ends, until ctx is done or
// the hub is closed. sub may be nil (subscribe first).
func (s *Service) watch(ctx context.Context, sub *event.Subscription) {
	for {
		if sub == nil {
			var err error
			sub, err = s.subscribe(ctx)
			switch {
			case ctx.Err() != nil, errors.Is(err, event.ErrClosed):
				return
			case err != nil:
				s.log.Error("webhook: subscribe to events", "err", err)
				if !sleep(ctx, s.opts.PollInterval) {
					return
				}
				continue
			}
			// Events may have been stored while there was no subscription.
			s.wakeAll()
		}
		for ev := range sub.C() {
			if ev.Kind != job.EventProgress {
				s.wake(&ev)
			}
		}
		err := sub.Err()
		sub.Close()
		sub = nil
		if ctx.Err() != nil || errors.Is(err, event.ErrClosed) {
			return
		}
		s.log.Warn("webhook: event subscription ended; subscribing again", "err", err)
	}
}

// wake pokes the delivery goroutines of the webhooks ev matches.
func (s *Service) wake(ev *job.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deliverers {
		if d.filter.Match(ev) {
			d.poke()
		}
	}
}

// wakeAll pokes every delivery goroutine.
func (s *Service) wakeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.deliverers {
		d.poke()
	}
}

// sleep waits d and reports true, or reports false as soon as ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
