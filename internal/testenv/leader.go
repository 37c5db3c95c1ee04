package testenv

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// IsLeader reports whether the tenantry process serving metrics on
// metricsAddr (host:port) holds the leader-election lease, from
// controller-runtime's leader_election_master_status metric.
func IsLeader(metricsAddr string) bool {
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "leader_election_master_status{") && strings.HasSuffix(sc.Text(), " 1") {
			return true
		}
	}
	return false
}

// LeaderAmong waits up to limit for exactly one of the processes serving
// metrics on metricsAddrs to lead, and returns its index (-1 if none led
// in time) and how long that took. Two leaders at once is an error.
func LeaderAmong(limit time.Duration, metricsAddrs ...string) (int, time.Duration, error) {
	begin := time.Now()
	for time.Since(begin) < limit {
		leader := -1
		for i, addr := range metricsAddrs {
			if IsLeader(addr) {
				if leader >= 0 {
					return -1, time.Since(begin), fmt.Errorf("%s and %s lead at once", metricsAddrs[leader], addr)
				}
				leader = i
			}
		}
		if leader >= 0 {
			return leader, time.Since(begin), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, time.Since(begin), nil
}
