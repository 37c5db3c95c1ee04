package importer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tenantry/tenantry/internal/lifecycle"
)

// aceRedisSuffix ends every key ACE's Redis adapter stores a clientInfo
// under: redisKey("clientInfo", clientKey) is "<clientKey>:clientInfo".
const aceRedisSuffix = ":clientInfo"

// redisBatch is how many values one MGET fetches.
const redisBatch = 500

func openRedis(ctx context.Context, from string) (Source, error) {
	opts, err := redis.ParseURL(from)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	c := redis.NewClient(opts)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect to Redis %s: %w", redactURL(from), err)
	}
	return &redisSource{client: c, desc: "atlassian-connect-express on Redis " + redactURL(from)}, nil
}

type redisSource struct {
	client *redis.Client
	desc   string
	keys   []string // sorted, cached by the first Count or Read
}

func (s *redisSource) Describe() string { return s.desc }
func (s *redisSource) Close() error     { return s.client.Close() }

// allKeys lists the clientInfo keys with SCAN (KEYS, which ACE uses,
// blocks the server for the whole keyspace), sorted by clientKey.
func (s *redisSource) allKeys(ctx context.Context) ([]string, error) {
	if s.keys != nil {
		return s.keys, nil
	}
	var keys []string
	iter := s.client.Scan(ctx, 0, "*"+aceRedisSuffix, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", s.desc, err)
	}
	// By clientKey, not by key: ":" sorts after some characters a
	// clientKey can hold.
	sort.Slice(keys, func(i, j int) bool {
		return strings.TrimSuffix(keys[i], aceRedisSuffix) < strings.TrimSuffix(keys[j], aceRedisSuffix)
	})
	keys = compactStrings(keys)
	s.keys = keys
	return keys, nil
}

func (s *redisSource) after(ctx context.Context, after string) ([]string, error) {
	keys, err := s.allKeys(ctx)
	if err != nil {
		return nil, err
	}
	i := sort.Search(len(keys), func(i int) bool { return strings.TrimSuffix(keys[i], aceRedisSuffix) > after })
	return keys[i:], nil
}

func (s *redisSource) Count(ctx context.Context, after string) (int, error) {
	keys, err := s.after(ctx, after)
	return len(keys), err
}

func (s *redisSource) Read(ctx context.Context, after string, fn func(Record) error) error {
	keys, err := s.after(ctx, after)
	if err != nil {
		return err
	}
	for start := 0; start < len(keys); start += redisBatch {
		batch := keys[start:min(start+redisBatch, len(keys))]
		// Sizes first, so that a record larger than a lifecycle payload
		// may be is never read (a hostile value cannot exhaust memory).
		sizes := make([]*redis.IntCmd, len(batch))
		pipe := s.client.Pipeline()
		for i, k := range batch {
			sizes[i] = pipe.StrLen(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read %s: %w", s.desc, err)
		}
		var small []string
		for i, k := range batch {
			if sizes[i].Val() <= lifecycle.MaxPayloadBytes {
				small = append(small, k)
			}
		}
		values := map[string]any{}
		if len(small) > 0 {
			got, err := s.client.MGet(ctx, small...).Result()
			if err != nil {
				return fmt.Errorf("read %s: %w", s.desc, err)
			}
			for i, k := range small {
				values[k] = got[i]
			}
		}
		for i, key := range batch {
			clientKey := strings.TrimSuffix(key, aceRedisSuffix)
			rec := Record{
				Where:     fmt.Sprintf("Redis key %q", truncateRunes(key, 80)),
				Order:     clientKey,
				ClientKey: clientKey,
				Size:      sizes[i].Val(),
			}
			if rec.Size > lifecycle.MaxPayloadBytes {
				rec.TooLarge = true
			} else {
				str, ok := values[key].(string)
				if !ok {
					continue // deleted since the scan
				}
				rec.Payload = []byte(str)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// compactStrings drops repeats from a sorted slice (SCAN may return a key
// twice).
func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
