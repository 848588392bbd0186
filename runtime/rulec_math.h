/* rulec's vector math: libm functions that vectorized loops may call.
 * Part of rulec's C runtime; C99 plus GCC attributes where available. */
#ifndef RULEC_MATH_H
#define RULEC_MATH_H

#include <stddef.h>
#include <stdint.h>

/* With GCC-compatible compilers, the few libc and libm functions the kernels
 * use are compiler builtins, so kernels include no heavy system header (they
 * compile faster); elsewhere, or with RULEC_STANDARD_HEADERS, the standard
 * headers supply them. */
#if defined(__GNUC__) && !defined(RULEC_STANDARD_HEADERS)
#define rulec_fabsf __builtin_fabsf
#define rulec_sqrtf __builtin_sqrtf
#define rulec_sqrt __builtin_sqrt
#define rulec_isfinite __builtin_isfinite
#define rulec_malloc __builtin_malloc
#define rulec_free __builtin_free
#define rulec_memcpy __builtin_memcpy
#define RULEC_INFINITY __builtin_inff()
#define RULEC_NAN __builtin_nanf("")
#define RULEC_NOINLINE __attribute__((__noinline__))
#else
#include <math.h>
#include <stdlib.h>
#include <string.h>
#define rulec_fabsf fabsf
#define rulec_sqrtf sqrtf
#define rulec_sqrt sqrt
#define rulec_isfinite isfinite
#define rulec_malloc malloc
#define rulec_free free
#define rulec_memcpy memcpy
#define RULEC_INFINITY INFINITY
#define RULEC_NAN NAN
#define RULEC_NOINLINE
#endif

/* Vector math. On x86-64 glibc, libmvec provides SIMD versions of expf,
 * logf, sinf, cosf and tanhf (and of log and cos, used by gauss()), with a
 * documented maximum error of 4 ulp and special values (NaN, +-inf) handled
 * as the scalar functions do. The rulec_* names below are the libm functions
 * themselves (an asm label), declared `simd` and `const`, so that the
 * compiler calls the SIMD versions from vectorized loops without
 * -ffast-math, and does not merge sinf and cosf into a scalar sincosf.
 * Elsewhere they are plain calls to libm. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(RULEC_NO_LIBMVEC)
#define RULEC_VECTOR_MATH(type, name, libm) \
    type name(type) __asm__(#libm) __attribute__((__simd__("notinbranch"), __const__, __nothrow__));
#else
#include <math.h>
#define RULEC_VECTOR_MATH(type, name, libm) \
    static inline type name(type a) { return libm(a); }
#endif
RULEC_VECTOR_MATH(float, rulec_expf, expf)
RULEC_VECTOR_MATH(float, rulec_logf, logf)
RULEC_VECTOR_MATH(float, rulec_sinf, sinf)
RULEC_VECTOR_MATH(float, rulec_cosf, cosf)
RULEC_VECTOR_MATH(float, rulec_tanhf, tanhf)
RULEC_VECTOR_MATH(double, rulec_log, log)
RULEC_VECTOR_MATH(double, rulec_cos, cos)

/* Two-argument functions: powf (libmvec since glibc 2.22) and atan2f, and
 * atanf (since 2.35). <stdint.h> above defines __GLIBC_MINOR__ on glibc. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__GLIBC__) && !defined(RULEC_NO_LIBMVEC)
#define RULEC_VECTOR_MATH2(type, name, libm) \
    type name(type, type) __asm__(#libm) __attribute__((__simd__("notinbranch"), __const__, __nothrow__));
#else
#define RULEC_VECTOR_MATH2(type, name, libm) \
    static inline type name(type a, type b) { return libm(a, b); }
#endif
RULEC_VECTOR_MATH2(float, rulec_powf, powf)
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 35)
RULEC_VECTOR_MATH(float, rulec_atanf, atanf)
RULEC_VECTOR_MATH2(float, rulec_atan2f, atan2f)
#else
#include <math.h>
static inline float rulec_atanf(float a) { return atanf(a); }
static inline float rulec_atan2f(float y, float x) { return atan2f(y, x); }
#endif

#endif /* RULEC_MATH_H */
