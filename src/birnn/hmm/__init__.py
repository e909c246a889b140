"""Discrete hidden Markov models: sampling, filtering, smoothing, Viterbi, Baum–Welch.

The forward recursion of an HMM is a unidirectional RNN; the backward
recursion runs the other way; the posterior p(h_t | x_1..x_T) needs both. This
package computes them in NumPy with scaled recursions, batched over
sequences, with numba-compiled loops where K is small and batched BLAS products where it is large.
"""

from birnn.hmm.model import HMM, casino

__all__ = ["HMM", "casino"]
