"""WeCom callback crypto (the WXBizMsgCrypt scheme, developer doc 90968).

- Signature: ``msg_signature = sha1("".join(sorted([token, timestamp, nonce, encrypt])))``.
- Cipher: AES-256-CBC, key = base64decode(EncodingAESKey + "="), iv = key[:16], PKCS#7 padding
  to a 32-byte block (not AES's 16: WeCom's own choice).
- Plaintext layout: random(16) + msg_len(4, big-endian) + msg + receive_id, where receive_id is
  the corp id for an internal app; a different one means the message was not meant for us.

Every failure is a ``CryptoError`` with a short ``reason`` usable as a metrics label.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32
RANDOM_BYTES = 16


class CryptoError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode()).hexdigest()


def pkcs7_pad(data: bytes, block: int = BLOCK) -> bytes:
    n = block - len(data) % block
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block: int = BLOCK) -> bytes:
    if not data or len(data) % 16:
        raise CryptoError("bad_padding")
    n = data[-1]
    if not 1 <= n <= block or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad_padding")
    return data[:-n]


def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise ValueError("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("EncodingAESKey must decode to 32 bytes")
    return key


class WeComCrypto:
    """Sign, encrypt and decrypt for one callback configuration (token, key, receive id)."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if not token:
            raise ValueError("callback token is empty")
        self._token = token
        self._key = aes_key(encoding_aes_key)
        self.receive_id = receive_id

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self._token, timestamp, nonce, encrypt)

    def check_signature(
        self, msg_signature: str, timestamp: str, nonce: str, encrypt: str
    ) -> None:
        expected = self.sign(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected.encode(), msg_signature.strip().lower().encode()):
            raise CryptoError("bad_signature")

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        """Base64 ciphertext of ``message`` (``random16`` fixed only for test vectors)."""
        rand = os.urandom(RANDOM_BYTES) if random16 is None else random16
        if len(rand) != RANDOM_BYTES:
            raise ValueError("random prefix must be 16 bytes")
        plain = rand + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(pkcs7_pad(plain)) + enc.finalize()).decode()

    def decrypt(self, encrypt: str) -> bytes:
        """The message inside ``encrypt``; checks padding, length and receive id."""
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("bad_base64") from None
        if not raw or len(raw) % 16:
            raise CryptoError("bad_length")
        dec = self._cipher().decryptor()
        plain = pkcs7_unpad(dec.update(raw) + dec.finalize())
        if len(plain) < RANDOM_BYTES + 4:
            raise CryptoError("bad_length")
        (size,) = struct.unpack(">I", plain[RANDOM_BYTES : RANDOM_BYTES + 4])
        body = plain[RANDOM_BYTES + 4 :]
        if size > len(body):
            raise CryptoError("bad_length")
        message, receive_id = body[:size], body[size:]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CryptoError("wrong_receive_id")
        return message

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """URL verification (GET): check the signature over ``echostr``, return its plaintext."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        try:
            return self.decrypt(echostr).decode()
        except UnicodeDecodeError:
            raise CryptoError("bad_encoding") from None

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        """A POSTed ``<Encrypt>`` value: signature checked first, then decrypted."""
        self.check_signature(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def seal(self, message: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """``(encrypt, msg_signature)`` for ``message``: what WeCom (or our fake) sends."""
        encrypt = self.encrypt(message)
        return encrypt, self.sign(timestamp, nonce, encrypt)
