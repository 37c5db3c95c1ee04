package importer

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// WriteReport prints the summary: the table by outcome and reason, the
// API calls it cost, the records not written as they are, and how to
// watch the imported tenants being verified.
func WriteReport(w io.Writer, s *Summary) {
	if s.DryRun {
		fmt.Fprintf(w, "DRY RUN: nothing was written. Planned import of %s into ConnectApp %s:\n\n", s.Source, s.App)
	} else {
		fmt.Fprintf(w, "Imported %s into ConnectApp %s:\n\n", s.Source, s.App)
	}
	if s.Resumed != "" {
		fmt.Fprintf(w, "(resumed from the checkpoint: records before it were done by an earlier run)\n\n")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTCOME\tREASON\tRECORDS")
	for _, o := range outcomeOrder {
		reasons := make([]string, 0, len(s.Counts[o]))
		for r := range s.Counts[o] {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", label(o, s.DryRun), dash(r), s.Counts[o][r])
		}
	}
	fmt.Fprintf(tw, "total\t\t%d\n", s.Records)
	tw.Flush()

	perRecord := 0.0
	if s.Records > 0 {
		perRecord = float64(s.Writes) / float64(s.Records)
	}
	rate := float64(s.Records) / max(s.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "\n%d records in %s (%.0f records/s); API writes %d (%.2f per record), reads %d\n",
		s.Records, s.Elapsed.Round(1e6), rate, s.Writes, perRecord, s.Reads)

	if len(s.Problems) > 0 {
		fmt.Fprintln(w, "\nRecords not written as they are:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OUTCOME\tREASON\tRECORD\tCLIENT KEY HASH\tDETAIL")
		for _, p := range s.Problems {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", label(p.Outcome, s.DryRun), dash(p.Reason), p.Where, dash(p.ClientKeyHash), p.Message)
		}
		tw.Flush()
		if s.MoreProblems > 0 {
			fmt.Fprintf(w, "... and %d more\n", s.MoreProblems)
		}
	}

	switch {
	case s.DryRun:
		fmt.Fprintln(w, "\nRun the same command without --dry-run to write it.")
	case s.Count(Created)+s.Count(Updated) > 0:
		fmt.Fprintf(w, "\nImported tenants start Pending; the controllers now call each product back with its imported secret.\n"+
			"Watch them turn Verified (or Unverified, then Rogue after the app's rogue.gracePeriod, handled by rogue.action):\n"+
			"  kubectl get ctenant -n %s -l %s=%s -w\n"+
			"  kubectl get capp -n %s %s\n",
			s.App.Namespace, labelApp, s.App.Name, s.App.Namespace, s.App.Name)
	}
	if err := s.Err(); err != nil {
		fmt.Fprintf(w, "\n%v\n", err)
	}
}

func label(o Outcome, dryRun bool) string {
	if !dryRun {
		return string(o)
	}
	switch o {
	case Created:
		return "would create"
	case Updated:
		return "would update"
	case Skipped:
		return "would skip"
	}
	return string(o)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
