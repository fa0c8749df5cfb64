"""Wire protocols of the media plane: one small pure module per gateway protocol."""
