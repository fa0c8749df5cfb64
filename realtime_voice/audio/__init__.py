"""Audio for the media path: G.711 codecs, streaming resampling, framing, the AudioProcessor."""
