"""VE.Direct text protocol: decoder, encoder, field table and snapshot assembly."""

from vemonitor.vedirect.decoder import Decoder, Limits, decode_bytes
from vemonitor.vedirect.encoder import encode_block, encode_hex
from vemonitor.vedirect.events import REJECT_REASONS, Block, Event, HexMessage, Rejected
from vemonitor.vedirect.fields import FIELD_BY_LABEL, FIELDS, Code, FieldSpec, Flags, decode_fields

__all__ = [
    "REJECT_REASONS", "Block", "Code", "Decoder", "Event", "FIELDS", "FIELD_BY_LABEL",
    "FieldSpec", "Flags", "HexMessage", "Limits", "Rejected", "decode_bytes",
    "decode_fields", "encode_block", "encode_hex",
]
