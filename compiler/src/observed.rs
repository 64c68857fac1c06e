//! The shape runs of a workflow actually had, measured per LLM node: how often each node called
//! its model per run and how many prompt, cached and generated tokens a call had. With it, the
//! `place` pass builds the operator graph of those runs (map elements, loop iterations and token
//! counts as observed) instead of the compile-time worst case (`max_tokens`, `max_len`, eight
//! list elements), so that the simulator can be checked against the same runs it predicts.

use std::collections::HashMap;

/// Mean figures of one LLM node over the observed runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObservedNode {
    /// Calls per run.
    pub calls_per_run: f64,
    /// Per call: prompt tokens, of them found in the prefix cache, and tokens generated.
    pub prompt_tokens: f64,
    pub cached_tokens: f64,
    pub completion_tokens: f64,
}

/// Observed figures by workflow node id (`node` attribute of the exec ops).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedShape {
    pub nodes: HashMap<String, ObservedNode>,
}

impl ObservedShape {
    /// From totals over `runs` runs: (node, calls, prompt, cached, completion tokens).
    pub fn from_totals<'n>(
        runs: usize,
        totals: impl IntoIterator<Item = (&'n str, [usize; 4])>,
    ) -> ObservedShape {
        let runs = runs.max(1) as f64;
        let nodes = totals
            .into_iter()
            .filter(|(_, t)| t[0] > 0)
            .map(|(node, [calls, prompt, cached, completion])| {
                let per_call = |n: usize| n as f64 / calls as f64;
                (
                    node.to_string(),
                    ObservedNode {
                        calls_per_run: calls as f64 / runs,
                        prompt_tokens: per_call(prompt),
                        cached_tokens: per_call(cached),
                        completion_tokens: per_call(completion),
                    },
                )
            })
            .collect();
        ObservedShape { nodes }
    }

    pub fn node(&self, id: &str) -> Option<&ObservedNode> {
        self.nodes.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_become_means_per_run_and_per_call() {
        let shape =
            ObservedShape::from_totals(2, [("a", [6, 300, 60, 120]), ("never", [0, 0, 0, 0])]);
        assert_eq!(
            shape.node("a"),
            Some(&ObservedNode {
                calls_per_run: 3.0,
                prompt_tokens: 50.0,
                cached_tokens: 10.0,
                completion_tokens: 20.0,
            })
        );
        assert_eq!(shape.node("never"), None);
    }
}
