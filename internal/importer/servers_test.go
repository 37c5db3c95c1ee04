package importer

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Real stores for the tests, from Debian's packages: each is started once
// per test binary, as a child process on a free loopback port with its own
// temporary data directory, and stopped at the end.
var (
	serversMu  sync.Mutex
	stops      []func()
	pgURL      string
	pgHostPort string
	redisAddr  string
)

func stopServers() {
	serversMu.Lock()
	defer serversMu.Unlock()
	for i := len(stops) - 1; i >= 0; i-- {
		stops[i]()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// postgresBin finds Debian's PostgreSQL binaries (/usr/lib/postgresql/<v>/bin).
func postgresBin(t *testing.T) string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	return filepath.Dir(mustFindTool(t, matches...))
}

// asPostgresUser runs cmd as the postgres system user when the tests run
// as root (PostgreSQL refuses to run as root; CI runs as root), and as the
// current user otherwise.
func asPostgresUser(cmd *exec.Cmd) (*exec.Cmd, string) {
	if os.Geteuid() != 0 {
		return cmd, ""
	}
	args := append([]string{"-u", "postgres", "--", cmd.Path}, cmd.Args[1:]...)
	wrapped := exec.Command("runuser", args...)
	wrapped.Stdout, wrapped.Stderr = cmd.Stdout, cmd.Stderr
	return wrapped, "postgres"
}

// startPostgres starts one PostgreSQL for the test binary and returns a
// fresh database in it for this test.
func startPostgres(t *testing.T) string {
	t.Helper()
	bin := postgresBin(t)
	serversMu.Lock()
	defer serversMu.Unlock()
	if pgURL == "" {
		dir, err := os.MkdirTemp("", "tenantry-import-pg-")
		if err != nil {
			t.Fatal(err)
		}
		if _, owner := asPostgresUser(exec.Command("true")); owner != "" {
			u, err := user.Lookup(owner)
			if err != nil {
				t.Fatalf("the postgres user is missing (apt-get install postgresql creates it): %v", err)
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := os.Chown(dir, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		data := filepath.Join(dir, "data")
		initdb, _ := asPostgresUser(exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"))
		if out, err := initdb.CombinedOutput(); err != nil {
			t.Fatalf("initdb: %v\n%s", err, out)
		}
		port := freePort(t)
		logFile, err := os.Create(filepath.Join(os.TempDir(), filepath.Base(dir)+".log"))
		if err != nil {
			t.Fatal(err)
		}
		pg := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
			// A throwaway test database: durability off, for speed.
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
		pg.Stdout, pg.Stderr = logFile, logFile
		pg, _ = asPostgresUser(pg)
		if err := pg.Start(); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, func() {
			stopPostgres(pg, data)
			logFile.Close()
			os.RemoveAll(dir)
			os.Remove(logFile.Name())
		})
		url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
		waitFor(t, "PostgreSQL", func() error {
			db, err := sql.Open("pgx", url)
			if err != nil {
				return err
			}
			defer db.Close()
			return db.Ping()
		})
		pgURL, pgHostPort = url, fmt.Sprintf("127.0.0.1:%d", port)
	}
	// A database per test.
	db, err := sql.Open("pgx", pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	name := fmt.Sprintf("t%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", pgHostPort, name)
}

// startRedis starts one Redis for the test binary and returns the URL of
// a database number of its own for this test.
func startRedis(t *testing.T) string {
	t.Helper()
	bin := mustFindTool(t, "/usr/bin/redis-server")
	serversMu.Lock()
	defer serversMu.Unlock()
	if redisAddr == "" {
		dir, err := os.MkdirTemp("", "tenantry-import-redis-")
		if err != nil {
			t.Fatal(err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		_, port, _ := net.SplitHostPort(addr)
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--dir", dir, "--save", "", "--appendonly", "no", "--databases", "64")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stops = append(stops, func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			os.RemoveAll(dir)
		})
		waitFor(t, "Redis", func() error {
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			return c.Ping(context.Background()).Err()
		})
		redisAddr = addr
		redisDB = 0
	}
	redisDB++
	return fmt.Sprintf("redis://%s/%d", redisAddr, redisDB)
}

var redisDB int

func waitFor(t *testing.T, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopPostgres asks the postmaster for a fast shutdown and waits for it.
// Under root the process started is runuser, which does not pass SIGINT on
// to its child, so the signal goes to the postmaster's own PID (the first
// line of postmaster.pid); whatever is still running after 30 s is killed.
func stopPostgres(pg *exec.Cmd, data string) {
	if b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Signal(os.Interrupt)
			}
		}
	}
	_ = pg.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = pg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = pg.Process.Kill()
		<-done
	}
}
