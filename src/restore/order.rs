//! The order a restore writes flows in: called flows before their callers. Flows are grouped into
//! dependency levels — a level calls only flows of earlier levels, or of its own cycle — so each
//! level can be written concurrently once the one before it is published. Flows that call each
//! other (a cycle, e.g. inbound call ↔ secure call) share a level and are marked, so all of them
//! are saved before any is published.

/// The levels of a set of flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    /// Flow indices per level, callees first.
    pub levels: Vec<Vec<usize>>,
    /// Per flow: true when it is part of a cycle.
    pub in_cycle: Vec<bool>,
}

/// Strongly connected components of the call graph (`calls[i]`: the flows `i` calls), by
/// Kosaraju's two passes, iteratively (no recursion however long a chain of calls is).
fn components(calls: &[Vec<usize>]) -> Vec<usize> {
    let n = calls.len();
    let mut order = Vec::with_capacity(n);
    let mut visited = vec![false; n];
    for start in 0..n {
        if visited[start] {
            continue;
        }
        visited[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((node, next)) = stack.pop() {
            match calls[node].get(next) {
                Some(&callee) => {
                    stack.push((node, next + 1));
                    if callee < n && !visited[callee] {
                        visited[callee] = true;
                        stack.push((callee, 0));
                    }
                }
                None => order.push(node),
            }
        }
    }
    let mut callers = vec![Vec::new(); n];
    for (i, cs) in calls.iter().enumerate() {
        for &c in cs.iter().filter(|c| **c < n) {
            callers[c].push(i);
        }
    }
    let mut component = vec![usize::MAX; n];
    let mut count = 0;
    for &root in order.iter().rev() {
        if component[root] != usize::MAX {
            continue;
        }
        component[root] = count;
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            for &caller in &callers[node] {
                if component[caller] == usize::MAX {
                    component[caller] = count;
                    stack.push(caller);
                }
            }
        }
        count += 1;
    }
    component
}

/// Groups flows into levels: level 0 calls no other flow of the set (outside its cycle).
pub fn levels(calls: &[Vec<usize>]) -> Levels {
    let n = calls.len();
    let component = components(calls);
    let comps = component.iter().copied().max().map_or(0, |m| m + 1);
    let mut size = vec![0usize; comps];
    component.iter().for_each(|c| size[*c] += 1);
    // Kosaraju numbers components in topological order of the calls (callers first), so going
    // from the last component back, every callee's level is known before its callers'.
    let mut members = vec![Vec::new(); comps];
    (0..n).for_each(|i| members[component[i]].push(i));
    let mut level = vec![0usize; comps];
    for c in (0..comps).rev() {
        level[c] = members[c]
            .iter()
            .flat_map(|i| calls[*i].iter())
            .filter(|callee| **callee < n && component[**callee] != c)
            .map(|callee| level[component[*callee]] + 1)
            .max()
            .unwrap_or(0);
    }
    let depth = level.iter().copied().max().map_or(0, |m| m + 1);
    let mut levels = vec![Vec::new(); depth];
    for i in 0..n {
        levels[level[component[i]]].push(i);
    }
    let in_cycle = (0..n)
        .map(|i| size[component[i]] > 1 || calls[i].contains(&i))
        .collect();
    Levels { levels, in_cycle }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn called_flows_come_before_their_callers() {
        // 0 calls 1, 1 calls 2; 3 calls nothing.
        let l = levels(&[vec![1], vec![2], vec![], vec![]]);
        assert_eq!(l.levels, vec![vec![2, 3], vec![1], vec![0]]);
        assert!(l.in_cycle.iter().all(|c| !c));
    }

    #[test]
    fn a_cycle_shares_a_level_after_what_it_calls() {
        // 0 ↔ 1, and 1 calls 2; 3 calls 0.
        let l = levels(&[vec![1], vec![0, 2], vec![], vec![0]]);
        assert_eq!(l.levels, vec![vec![2], vec![0, 1], vec![3]]);
        assert_eq!(l.in_cycle, vec![true, true, false, false]);
    }

    #[test]
    fn a_long_chain_does_not_recurse() {
        let calls: Vec<Vec<usize>> = (0..50_000).map(|i| if i > 0 { vec![i - 1] } else { vec![] }).collect();
        assert_eq!(levels(&calls).levels.len(), 50_000);
    }
}
