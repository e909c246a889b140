"""Experiments: runs that train and compare models end to end — the demo (HMM optima against
an LSTM and a BiLSTM), The Time Machine language model and cloze, taggers on the user's files."""
