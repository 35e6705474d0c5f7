//! Hunks: the pieces of a text change that `ws diff` shows under one `@@`
//! header, and the arithmetic that takes some of them back or keeps them.
//!
//! The hunks are exactly those of the unified diff the reviewer reads: line
//! diff (`imara-diff`'s Myers, with git's heuristics) grouped with
//! [`CONTEXT`] lines of context, so hunk `n` here is the `n`th `@@` block on
//! the screen. Pure functions: no I/O.
//!
//! The agent chooses both sides. A plain Myers diff costs O((N+M)·D): a
//! one-line file replaced by 34,000 different lines took `similar` 1 s, and
//! ten times the lines a hundred times as long, for every `ws diff`. The
//! heuristics (git's and GNU diff's) keep it near linear; the result is
//! still deterministic, so the hunks `ws diff` numbers are the ones
//! `ws rollback --hunk` takes.

use std::ops::Range;

use imara_diff::intern::InternedInput;

/// Lines of context around a change, as in `git diff`: changes closer than
/// twice this share a hunk.
pub const CONTEXT: usize = 3;

/// Files larger than this are not diffed line by line (and have no hunks).
pub const MAX_TEXT: u64 = 8 << 20;

/// One `@@` block. Starts and counts follow the unified-diff header: 1-based
/// first line, except that an empty side gives the line after which it sits
/// (0 at the top of the file), as `git diff` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based, in file order.
    pub id: usize,
    pub old_start: usize,
    pub old_lines: usize,
    pub new_start: usize,
    pub new_lines: usize,
}

/// Whether content is text for diffing: no NUL byte in its first 8,000
/// bytes (git's rule).
pub fn is_text(bytes: &[u8]) -> bool {
    !bytes[..bytes.len().min(8000)].contains(&0)
}

/// One line of a hunk as the patch shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Context(&'a [u8]),
    Removed(&'a [u8]),
    Added(&'a [u8]),
}

/// A run of the line diff: equal lines, or changed ones (removed, added or
/// both), alternating, covering both files in order.
#[derive(Clone, Debug)]
struct Run {
    equal: bool,
    old: Range<usize>,
    new: Range<usize>,
}

/// The lines of `old` and `new` (each with its `\n`, as the patch prints
/// them) and the runs of the line diff between them.
struct LineDiff<'a> {
    olds: Vec<&'a [u8]>,
    news: Vec<&'a [u8]>,
    runs: Vec<Run>,
}

fn line_diff<'a>(old: &'a [u8], new: &'a [u8]) -> LineDiff<'a> {
    let olds: Vec<&[u8]> = old.split_inclusive(|&b| b == b'\n').collect();
    let news: Vec<&[u8]> = new.split_inclusive(|&b| b == b'\n').collect();
    let mut input = InternedInput::default();
    input.update_before(olds.iter().copied());
    input.update_after(news.iter().copied());
    let mut changes: Vec<(Range<usize>, Range<usize>)> = Vec::new();
    imara_diff::diff(imara_diff::Algorithm::Myers, &input, |o: Range<u32>, n: Range<u32>| {
        changes.push((o.start as usize..o.end as usize, n.start as usize..n.end as usize));
    });
    changes.sort_by_key(|(o, n)| (o.start, n.start));
    let (mut o, mut n) = (0, 0);
    let mut runs: Vec<Run> = Vec::new();
    let push = |runs: &mut Vec<Run>, equal: bool, old: Range<usize>, new: Range<usize>| {
        if old.is_empty() && new.is_empty() {
            return;
        }
        match runs.last_mut() {
            Some(r) if r.equal == equal => {
                r.old.end = old.end;
                r.new.end = new.end;
            }
            _ => runs.push(Run { equal, old, new }),
        }
    };
    for (co, cn) in changes {
        // The lines between two changes are equal: as many on each side.
        push(&mut runs, true, o..co.start, n..cn.start);
        (o, n) = (co.end, cn.end);
        push(&mut runs, false, co, cn);
    }
    push(&mut runs, true, o..olds.len(), n..news.len());
    LineDiff { olds, news, runs }
}

/// How many lines the change from `old` to `new` adds and removes.
pub fn line_counts(old: &[u8], new: &[u8]) -> (usize, usize) {
    let d = line_diff(old, new);
    d.runs.iter().filter(|r| !r.equal).fold((0, 0), |(a, r), run| (a + run.new.len(), r + run.old.len()))
}

/// The first and last run of each hunk: changes at most `2 * CONTEXT`
/// equal lines apart share a hunk, as `git diff` groups them; with `split`,
/// each change is a hunk of its own (what `s` at a `-p` prompt shows).
fn groups(runs: &[Run], split: bool) -> Vec<(usize, usize)> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for i in (0..runs.len()).filter(|&i| !runs[i].equal) {
        match groups.last_mut() {
            Some(g) if !split && runs[i].old.start - runs[g.1].old.end <= 2 * CONTEXT => g.1 = i,
            _ => groups.push((i, i)),
        }
    }
    groups
}

/// The line ranges (0-based, half-open) of each hunk, (old, new), and the
/// runs it spans (context included).
#[allow(clippy::type_complexity)]
fn ranges_and_runs(runs: &[Run], split: bool) -> Vec<(Range<usize>, Range<usize>, Range<usize>)> {
    let groups = groups(runs, split);
    let total_old = runs.last().map_or(0, |r| r.old.end);
    groups
        .into_iter()
        .map(|(a, b)| {
            let before = runs[a].old.start - if a == 0 { 0 } else { runs[a - 1].old.start };
            let lead = if a > 0 && runs[a - 1].equal { before.min(CONTEXT) } else { 0 };
            let after_len = runs.get(b + 1).filter(|r| r.equal).map_or(0, |r| r.old.len());
            let trail = after_len.min(CONTEXT).min(total_old - runs[b].old.end);
            let old = runs[a].old.start - lead..runs[b].old.end + trail;
            let new = runs[a].new.start - lead..runs[b].new.end + trail;
            let first = if lead > 0 { a - 1 } else { a };
            let last = if trail > 0 { b + 1 } else { b };
            (old, new, first..last + 1)
        })
        .collect()
}

fn ranges(runs: &[Run]) -> Vec<(Range<usize>, Range<usize>)> {
    ranges_and_runs(runs, false).into_iter().map(|(o, n, _)| (o, n)).collect()
}

fn header(r: &Range<usize>) -> usize {
    if r.is_empty() { r.start } else { r.start + 1 }
}

/// The hunks of the change from `old` to `new` with the lines each shows:
/// what `ws diff` prints.
pub fn patch<'a>(old: &'a [u8], new: &'a [u8]) -> Vec<(Hunk, Vec<Line<'a>>)> {
    patch_with(old, new, false)
}

/// Like [`patch`] with every change its own piece, numbered from 1 in file
/// order (context may overlap): the units of [`combine_changes`].
pub fn split_patch<'a>(old: &'a [u8], new: &'a [u8]) -> Vec<(Hunk, Vec<Line<'a>>)> {
    patch_with(old, new, true)
}

/// For each change (as [`split_patch`] numbers them), the id of its hunk.
pub fn hunk_of_changes(old: &[u8], new: &[u8]) -> Vec<usize> {
    let runs = line_diff(old, new).runs;
    let mut out = Vec::new();
    for (k, (a, b)) in groups(&runs, false).into_iter().enumerate() {
        out.extend(std::iter::repeat_n(k + 1, (a..=b).filter(|&i| !runs[i].equal).count()));
    }
    out
}

fn patch_with<'a>(old: &'a [u8], new: &'a [u8], split: bool) -> Vec<(Hunk, Vec<Line<'a>>)> {
    let LineDiff { olds, news, runs } = line_diff(old, new);
    ranges_and_runs(&runs, split)
        .into_iter()
        .enumerate()
        .map(|(k, (o, n, span))| {
            let hunk = Hunk {
                id: k + 1,
                old_start: header(&o),
                old_lines: o.len(),
                new_start: header(&n),
                new_lines: n.len(),
            };
            let mut lines = Vec::new();
            for r in &runs[span] {
                if r.equal {
                    let from = r.old.start.max(o.start);
                    let to = r.old.end.min(o.end);
                    lines.extend(olds[from..to].iter().map(|l| Line::Context(l)));
                } else {
                    lines.extend(olds[r.old.clone()].iter().map(|l| Line::Removed(l)));
                    lines.extend(news[r.new.clone()].iter().map(|l| Line::Added(l)));
                }
            }
            (hunk, lines)
        })
        .collect()
}

/// The hunks of the change from `old` to `new`.
pub fn hunks(old: &[u8], new: &[u8]) -> Vec<Hunk> {
    ranges(&line_diff(old, new).runs)
        .iter()
        .enumerate()
        .map(|(k, (o, n))| Hunk {
            id: k + 1,
            old_start: header(o),
            old_lines: o.len(),
            new_start: header(n),
            new_lines: n.len(),
        })
        .collect()
}

/// The file that has, of the change from `old` to `new`, exactly the hunks
/// for which `take_new(id)` holds; the others stay as in `old`.
///
/// Rolling back hunks S is `combine(old, new, |id| !S.contains(&id))`;
/// approving S (the reviewed version) is `combine(old, new, |id| S.contains(&id))`.
/// Hunks are disjoint on both sides and what lies between them is equal, so
/// each is swapped in or out on its own.
pub fn combine(old: &[u8], new: &[u8], take_new: impl Fn(usize) -> bool) -> Vec<u8> {
    let hunk = hunk_of_changes(old, new);
    combine_changes(old, new, |c| take_new(hunk[c - 1]))
}

/// [`combine`] by change (as [`split_patch`] numbers them) rather than hunk.
pub fn combine_changes(old: &[u8], new: &[u8], take_new: impl Fn(usize) -> bool) -> Vec<u8> {
    let LineDiff { olds, news, runs } = line_diff(old, new);
    let mut out = Vec::with_capacity(new.len().max(old.len()));
    let mut k = 0;
    for r in runs {
        let lines = if r.equal {
            &news[r.new]
        } else {
            k += 1;
            if take_new(k) { &news[r.new] } else { &olds[r.old] }
        };
        lines.iter().for_each(|l| out.extend_from_slice(l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(lines: &[&str]) -> Vec<u8> {
        lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes()
    }

    fn thirty() -> Vec<String> {
        (1..=30).map(|i| format!("line {i}")).collect()
    }

    #[test]
    fn three_distant_edits_are_three_hunks_with_unified_headers() {
        let old: Vec<String> = thirty();
        let mut new = old.clone();
        new[1] = "two".into(); // line 2
        new[14] = "fifteen".into(); // line 15
        new.insert(28, "added".into()); // after line 28
        let (o, n) = (
            text(&old.iter().map(String::as_str).collect::<Vec<_>>()),
            text(&new.iter().map(String::as_str).collect::<Vec<_>>()),
        );
        let h = hunks(&o, &n);
        assert_eq!(h.len(), 3, "{h:?}");
        assert_eq!(h[0], Hunk { id: 1, old_start: 1, old_lines: 5, new_start: 1, new_lines: 5 });
        assert_eq!(h[1], Hunk { id: 2, old_start: 12, old_lines: 7, new_start: 12, new_lines: 7 });
        assert_eq!(h[2], Hunk { id: 3, old_start: 26, old_lines: 5, new_start: 26, new_lines: 6 });
    }

    #[test]
    fn rolling_back_the_middle_hunk_restores_only_it() {
        let old = thirty();
        let mut new = old.clone();
        new[1] = "two".into();
        new[14] = "fifteen".into();
        new[27] = "twenty-eight".into();
        let join = |v: &[String]| text(&v.iter().map(String::as_str).collect::<Vec<_>>());
        let got = combine(&join(&old), &join(&new), |id| id != 2);
        let mut want = new.clone();
        want[14] = "line 15".into();
        assert_eq!(got, join(&want));
        assert_eq!(hunks(&join(&old), &got).len(), 2);
    }

    #[test]
    fn empty_sides_and_missing_final_newline() {
        assert_eq!(hunks(b"", b"a\nb"), vec![Hunk { id: 1, old_start: 0, old_lines: 0, new_start: 1, new_lines: 2 }]);
        assert_eq!(hunks(b"a\n", b"a\n"), vec![]);
        assert_eq!(combine(b"a\nb", b"a\nb\n", |_| false), b"a\nb");
        assert_eq!(combine(b"a\nb", b"a\nb\n", |_| true), b"a\nb\n");
        assert_eq!(combine(b"x\n", b"", |_| false), b"x\n");
    }

    #[test]
    fn a_deletion_similar_reports_at_the_wrong_new_line_keeps_true_headers() {
        // `similar` (the diff used before) reported the leading deletion
        // here at new line 15; built from that, the header said +16 and
        // rolling back changed the file.
        let (old, new) = (b"a\na\na\na\nb\na\nc\na", b"b\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\nb\na\na");
        assert_eq!(hunks(old, new), vec![Hunk { id: 1, old_start: 1, old_lines: 8, new_start: 1, new_lines: 18 }]);
        assert_eq!(combine(old, new, |_| false), old);
    }

    /// The shape that made a plain Myers diff quadratic: one line against
    /// 340,000 others (10 MB). Near linear here, and still exact.
    #[test]
    fn one_line_against_a_third_of_a_million_is_diffed_at_once() {
        let new: Vec<u8> = (0..340_000).flat_map(|i| format!("**/a*b*c*{i}*\n").into_bytes()).collect();
        let t = std::time::Instant::now();
        let h = hunks(b"*.tmp\n", &new);
        assert_eq!(h, vec![Hunk { id: 1, old_start: 1, old_lines: 1, new_start: 1, new_lines: 340_000 }]);
        assert_eq!(line_counts(b"*.tmp\n", &new), (340_000, 1));
        assert_eq!(combine(b"*.tmp\n", &new, |_| false), b"*.tmp\n");
        // Not a speed check (the bench measures that): quadratic, this takes
        // hours; near linear, a second, or ten on a loaded machine.
        assert!(t.elapsed() < std::time::Duration::from_secs(120), "{:?}", t.elapsed());
    }

    /// A file of short lines from a small alphabet, so edits collide and
    /// the diff has real choices to make.
    fn file() -> impl Strategy<Value = Vec<u8>> {
        (prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "dd", "", "e f"]), 0..40), any::<bool>())
            .prop_map(|(lines, final_nl)| {
                let mut s = lines.join("\n");
                if final_nl && !s.is_empty() {
                    s.push('\n');
                }
                s.into_bytes()
            })
    }

    /// The model: splice the kept hunks' new lines into the old file, last first.
    fn model(old: &[u8], new: &[u8], take_new: impl Fn(usize) -> bool) -> Vec<u8> {
        let LineDiff { olds, news, runs } = line_diff(old, new);
        let mut lines: Vec<&[u8]> = olds;
        for (k, (o, n)) in ranges(&runs).into_iter().enumerate().rev() {
            if take_new(k + 1) {
                lines.splice(o, news[n].iter().copied());
            }
        }
        lines.concat()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_subset_of_hunks_matches_the_model(old in file(), new in file(), mask in any::<u64>()) {
            let keep = |id: usize| mask >> (id % 64) & 1 == 1;
            prop_assert_eq!(combine(&old, &new, keep), model(&old, &new, keep));
            prop_assert_eq!(combine(&old, &new, |_| false), old.clone());
            prop_assert_eq!(combine(&old, &new, |_| true), new.clone());
        }

        #[test]
        fn patch_lines_are_the_hunk_ranges_of_both_files(old in file(), new in file()) {
            // Independent of the diff's reported positions: the lines a hunk
            // shows are exactly the lines its header names, on both sides.
            let split = |b: &[u8]| b.split_inclusive(|&c| c == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>();
            let (ol, nl) = (split(&old), split(&new));
            let mut last_old_end = 0;
            for (h, lines) in patch(&old, &new) {
                let o0 = if h.old_lines == 0 { h.old_start } else { h.old_start - 1 };
                let n0 = if h.new_lines == 0 { h.new_start } else { h.new_start - 1 };
                let olds: Vec<Vec<u8>> = lines.iter().filter_map(|l| match l { Line::Context(x) | Line::Removed(x) => Some(x.to_vec()), _ => None }).collect();
                let news: Vec<Vec<u8>> = lines.iter().filter_map(|l| match l { Line::Context(x) | Line::Added(x) => Some(x.to_vec()), _ => None }).collect();
                prop_assert_eq!(&olds[..], &ol[o0..o0 + h.old_lines]);
                prop_assert_eq!(&news[..], &nl[n0..n0 + h.new_lines]);
                prop_assert!(lines.iter().any(|l| !matches!(l, Line::Context(_))));
                prop_assert!(o0 >= last_old_end);
                last_old_end = o0 + h.old_lines;
            }
        }

        #[test]
        fn split_pieces_partition_the_hunks(old in file(), new in file(), mask in any::<u64>()) {
            // Deciding every piece of a hunk alike is deciding the hunk.
            let of = hunk_of_changes(&old, &new);
            prop_assert_eq!(of.len(), split_patch(&old, &new).len());
            prop_assert!(of.windows(2).all(|w| w[0] <= w[1]));
            prop_assert_eq!(of.last().copied().unwrap_or(0), hunks(&old, &new).len());
            let keep = |id: usize| mask >> (id % 64) & 1 == 1;
            prop_assert_eq!(combine_changes(&old, &new, |c| keep(of[c - 1])), model(&old, &new, keep));
            prop_assert_eq!(combine_changes(&old, &new, |_| false), old.clone());
        }

        #[test]
        fn rolling_back_a_subset_then_all_others_gives_the_old_file(old in file(), new in file(), mask in any::<u64>()) {
            // Rollback of the hunks in `mask`; what is left is recomputed and
            // renumbered, as `ws diff` shows it next; then every remaining hunk.
            let first = combine(&old, &new, |id| mask >> (id % 64) & 1 == 0);
            let left = hunks(&old, &first);
            prop_assert!(left.len() <= hunks(&old, &new).len());
            prop_assert_eq!(left.iter().map(|h| h.id).collect::<Vec<_>>(), (1..=left.len()).collect::<Vec<_>>());
            prop_assert_eq!(combine(&old, &first, |_| false), old.clone());
        }

        #[test]
        fn approving_a_subset_leaves_exactly_the_others_pending(old in file(), new in file(), mask in any::<u64>()) {
            // Approval moves the base to the reviewed version; approving the
            // rest afterwards reaches the session's version.
            let reviewed = combine(&old, &new, |id| mask >> (id % 64) & 1 == 1);
            prop_assert_eq!(combine(&reviewed, &new, |_| true), new.clone());
            prop_assert_eq!(combine(&reviewed, &new, |_| false), reviewed.clone());
        }
    }
}
