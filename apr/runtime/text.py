"""The text of a decode call as its tokens arrive, cut just after the first stop string."""

from __future__ import annotations

import codecs


class TextStream:
    """Decoded text of a call, token by token, cut just after the first stop string it contains.

    Tokens arrive as bytes (byte-fallback tokens carry single UTF-8 bytes), so an incremental
    decoder holds back incomplete characters. The matched stop string stays in the text.
    """

    def __init__(self, stops: tuple[str, ...] = ()):
        self.stops = stops
        self.text = ""
        self.stopped = False
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, data: bytes) -> bool:
        """Append one token's bytes; True when the text now ends with a stop string."""
        piece = self._decoder.decode(data)
        if not piece or self.stopped:
            return self.stopped
        old = len(self.text)
        self.text += piece
        ends = [i + len(stop) for stop in self.stops
                if (i := self.text.find(stop, max(0, old - len(stop) + 1))) != -1]
        if ends:
            self.text, self.stopped = self.text[:min(ends)], True
        return self.stopped

    def close(self) -> None:
        """Flush a trailing incomplete character (as a replacement character) at the end of a call."""
        if not self.stopped:
            self.text += self._decoder.decode(b"", final=True)
