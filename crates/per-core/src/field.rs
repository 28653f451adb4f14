//! BN254 scalar field elements with the canonical encodings the circuits and the wire use.
//!
//! On the wire and on disk an element is 32 bytes big-endian; in JSON it is `0x` + 64 lowercase hex
//! digits. Values at or above the modulus are **rejected, never reduced**: a reduced value would make
//! two different byte strings name the same note, which breaks exactly-once and nullifier uniqueness.

use ark_ff::{BigInteger, PrimeField};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An element of the BN254 scalar field (the field Noir circuits compute in).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Field(pub(crate) ark_bn254::Fr);

/// Why bytes or text could not be read as a canonical field element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The value is ≥ the BN254 scalar modulus (non-canonical).
    #[error("field element is not canonical (≥ the BN254 modulus)")]
    NotCanonical,
    /// The text is not `0x` followed by exactly 64 hex digits.
    #[error("field element must be 0x followed by 64 hex digits")]
    BadHex,
}

impl Field {
    /// The additive identity; also the value of an empty leaf.
    pub const ZERO: Field = Field(ark_ff::MontFp!("0"));

    /// A small integer as a field element (amounts, domain tags).
    pub fn from_u64(value: u64) -> Field {
        Field(ark_bn254::Fr::from(value))
    }

    /// Reads 32 big-endian bytes, refusing values ≥ the modulus.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Result<Field, FieldError> {
        let mut le = *bytes;
        le.reverse();
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&le[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(word);
        }
        let bigint = ark_ff::BigInt::<4>(limbs);
        ark_bn254::Fr::from_bigint(bigint)
            .map(Field)
            .ok_or(FieldError::NotCanonical)
    }

    /// The canonical 32-byte big-endian encoding.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let bytes = self.0.into_bigint().to_bytes_be();
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(&bytes);
        out
    }

    /// Parses `0x` + 64 hex digits (either case), refusing non-canonical values.
    pub fn from_hex(text: &str) -> Result<Field, FieldError> {
        let digits = text.strip_prefix("0x").ok_or(FieldError::BadHex)?;
        if digits.len() != 64 {
            return Err(FieldError::BadHex);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| FieldError::BadHex)?;
        Field::from_be_bytes(&bytes)
    }

    /// `0x` + 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.to_be_bytes()))
    }

    /// Parses a decimal integer below the modulus (used by test vectors and tools).
    pub fn from_decimal(text: &str) -> Result<Field, FieldError> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::BadHex);
        }
        let mut acc = [0u8; 32];
        for digit in text.bytes() {
            // acc = acc * 10 + digit, big-endian, detecting overflow past 256 bits.
            let mut carry = u32::from(digit - b'0');
            for byte in acc.iter_mut().rev() {
                let v = u32::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return Err(FieldError::NotCanonical);
            }
        }
        Field::from_be_bytes(&acc)
    }

    /// Whether this is the zero element (an empty or spent leaf).
    pub fn is_zero(&self) -> bool {
        *self == Field::ZERO
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Binary formats (postcard) carry the 32 canonical bytes; human formats (JSON) carry the hex string.
impl Serialize for Field {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.to_be_bytes().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Field::from_hex(&text).map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; 32]>::deserialize(deserializer)?;
            Field::from_be_bytes(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODULUS: &str = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000001";

    #[test]
    fn hex_round_trip() {
        let f = Field::from_u64(0x1234);
        assert_eq!(
            f.to_hex(),
            "0x0000000000000000000000000000000000000000000000000000000000001234"
        );
        assert_eq!(Field::from_hex(&f.to_hex()), Ok(f));
    }

    #[test]
    fn modulus_is_rejected_and_modulus_minus_one_accepted() {
        assert_eq!(Field::from_hex(MODULUS), Err(FieldError::NotCanonical));
        let below = "0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000000";
        let f = Field::from_hex(below).expect("p-1 is canonical");
        assert_eq!(f.to_hex(), below);
        assert_eq!(
            Field::from_hex(&format!("0x{}", "f".repeat(64))),
            Err(FieldError::NotCanonical)
        );
    }

    #[test]
    fn malformed_hex_is_rejected() {
        for bad in [
            "",
            "0x",
            "12",
            "0x123",
            &format!("0x{}", "g".repeat(64)),
            &"0".repeat(66),
        ] {
            assert_eq!(Field::from_hex(bad), Err(FieldError::BadHex), "{bad}");
        }
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(Field::from_decimal("12345"), Ok(Field::from_u64(12345)));
        assert!(Field::from_decimal("").is_err());
        assert!(Field::from_decimal("-1").is_err());
    }
}
