// 4 x f32 in a NEON register: the vector type simd_ops.inc is written
// against on aarch64. Include <arm_neon.h> and <cstdint> first, then this
// header inside the translation unit's anonymous namespace.

struct VecNeon {
  using T = float32x4_t;
  static constexpr int N = 4;
  static T load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, T v) { vst1q_f32(p, v); }
  static T load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  // Round to nearest even (FPCR default), like the scalar f32_to_f16.
  static void store_f16(uint16_t* p, T v) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static T load_bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  // 4 int8 as floats (Q8_0 KV cache rows): a 4-byte load, never past them.
  static T load_i8(const int8_t* p) {
    int32_t w;
    std::memcpy(&w, p, sizeof w);
    const int16x8_t h = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
  }
  static T set1(float v) { return vdupq_n_f32(v); }
  // One f16 as a float (the hardware conversion; exact, as f16_to_f32).
  static float half_to_float(uint16_t h) { return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0); }
  static T zero() { return vdupq_n_f32(0.0f); }
  static T add(T a, T b) { return vaddq_f32(a, b); }
  static T sub(T a, T b) { return vsubq_f32(a, b); }
  static T mul(T a, T b) { return vmulq_f32(a, b); }
  static T div(T a, T b) { return vdivq_f32(a, b); }
  static T fma(T a, T b, T c) { return vfmaq_f32(c, a, b); }  // a * b + c
  static T max(T a, T b) { return vmaxq_f32(a, b); }
  static T min(T a, T b) { return vminq_f32(a, b); }
  static T round(T a) { return vrndnq_f32(a); }
  // 2^n for integral n in [-127, 127] held as floats.
  static T pow2n(T n) {
    const int32x4_t e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  static float reduce_add(T v) { return vaddvq_f32(v); }
  static void reduce_add_4(T a, T b, T c, T d, float* out) {
    out[0] = reduce_add(a);
    out[1] = reduce_add(b);
    out[2] = reduce_add(c);
    out[3] = reduce_add(d);
  }
  static float reduce_max(T v) { return vmaxvq_f32(v); }
};
