package client

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
	"strconv"

	"github.com/gantryhq/gantry/internal/wire"
)

// pageQuery adds limit and cursor to q.
func pageQuery(q url.Values, limit int, cursor string) url.Values {
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	return q
}

// getPage reads one page of a list and converts its items.
func getPage[W, T any](ctx context.Context, c *Client, path string, q url.Values, conv func(*W) T) (Page[T], error) {
	var p wire.Page[W]
	if _, err := c.do(ctx, call{method: "GET", path: path, query: q, out: &p}); err != nil {
		return Page[T]{}, err
	}
	out := Page[T]{Items: make([]T, len(p.Items))}
	for i := range p.Items {
		out.Items[i] = conv(&p.Items[i])
	}
	if p.NextCursor != nil {
		out.NextCursor = *p.NextCursor
	}
	return out, nil
}

// all iterates over the items of every page from cursor on, reading each
// page when the previous one is consumed. An error ends the iteration
// after it is yielded.
func all[T any](ctx context.Context, cursor string, page func(ctx context.Context, cursor string) (Page[T], error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			p, err := page(ctx, cursor)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, it := range p.Items {
				if !yield(it, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == cursor {
				var zero T
				yield(zero, fmt.Errorf("client: the server answered the same page cursor %q again", cursor))
				return
			}
			cursor = p.NextCursor
		}
	}
}

// getList reads a list that the server answers either as a JSON array or
// as a page object, following next cursors to the end.
func getList[W, T any](ctx context.Context, c *Client, path string, conv func(*W) T) ([]T, error) {
	var out []T
	cursor := ""
	for {
		var body json.RawMessage
		if _, err := c.do(ctx, call{method: "GET", path: path, query: pageQuery(url.Values{}, 0, cursor), out: &body}); err != nil {
			return nil, err
		}
		var p wire.Page[W]
		if len(body) > 0 && body[0] == '[' {
			if err := json.Unmarshal(body, &p.Items); err != nil {
				return nil, fmt.Errorf("client: GET %s: decode answer: %w", path, err)
			}
		} else if err := json.Unmarshal(body, &p); err != nil {
			return nil, fmt.Errorf("client: GET %s: decode answer: %w", path, err)
		}
		for i := range p.Items {
			out = append(out, conv(&p.Items[i]))
		}
		if p.NextCursor == nil || *p.NextCursor == "" || *p.NextCursor == cursor {
			return out, nil
		}
		cursor = *p.NextCursor
	}
}
