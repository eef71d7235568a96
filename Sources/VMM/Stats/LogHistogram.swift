/// A histogram of nanosecond durations in logarithmic buckets: each power of two is split into
/// `subBuckets` linear steps, so a percentile is within half a step of the truth (at most about 6%
/// with 8 steps) over the whole range from 1 ns to centuries, in a fixed 4 KiB-per-series array. Recording is
/// a few integer operations and never allocates.
public struct LogHistogram: Sendable {
  /// Each power of two is split into 2^3 buckets, so values are kept within 1/8.
  public static let subBucketBits = 3
  /// Buckets per power of two.
  public static let subBuckets = 1 << subBucketBits
  /// Buckets for every 64-bit value.
  public static let bucketCount = (64 - subBucketBits + 1) * subBuckets

  /// Bucket of a duration: values below `subBuckets` have their own bucket; above, the octave
  /// (position of the highest set bit) and the next `subBucketBits` bits select the bucket.
  @inline(__always)
  public static func bucket(of value: UInt64) -> Int {
    if value < UInt64(subBuckets) { return Int(value) }
    let octave = 63 - value.leadingZeroBitCount
    let sub = Int((value >> UInt64(octave - subBucketBits)) & UInt64(subBuckets - 1))
    return (octave - subBucketBits + 1) * subBuckets + sub
  }

  /// The smallest value that falls into `bucket`.
  public static func lowerBound(of bucket: Int) -> UInt64 {
    if bucket < subBuckets { return UInt64(bucket) }
    let octave = bucket / subBuckets + subBucketBits - 1
    let sub = UInt64(bucket % subBuckets)
    return (1 << UInt64(octave)) | (sub << UInt64(octave - subBucketBits))
  }

  /// A representative value for `bucket`: the middle of its range.
  public static func midpoint(of bucket: Int) -> UInt64 {
    let lo = lowerBound(of: bucket)
    let hi = bucket + 1 < bucketCount ? lowerBound(of: bucket + 1) : lo
    return lo + (hi - lo) / 2
  }
}
