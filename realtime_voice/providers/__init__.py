"""Speech providers behind small protocols: offline engines now, Deepgram next."""
