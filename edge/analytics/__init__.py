"""Streaming analytics on detections: tracking (ByteTrack), zones and lines, object events and
motion gating; and tracking evaluation (MOTChallenge files and sequences, CLEAR MOT, IDF1, HOTA).
Pure numpy and scipy; no torch."""
