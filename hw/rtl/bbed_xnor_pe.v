// Behavioural reference PE for a binary (XNOR-popcount) layer, written by `bbed vectors
// --testbench` (breakingbed). Not synthesis-tuned: it states the arithmetic an RTL PE must match.
//
// One tap word per enabled cycle: `w` and `x` are LANES-bit channel words (bit i = channel
// j*LANES+i of the tap; +1 -> 0, -1 -> 1). The XNOR word has a 1 where the operands match; the
// popcount tree counts match_bits among the `valid` lanes (real channels; the high lanes of a
// partly filled last word are 0 in both files and must NOT be counted, since XNOR(0,0) = 1).
// The accumulator holds the +/-1 dot product: acc += 2*match_bits - valid_lanes, i.e.
// K_real - 2*popcount(w XOR x) over a whole reduction (not FINN's match count).
// A tap on zero padding (`pad`) is masked: it still costs its cycle but adds nothing (treating it
// as a +1 activation, the packed encoding of 0 bits, is the classic "same-one" padding bug).
module bbed_xnor_pe #(
    parameter integer LANES = 48,
    parameter integer ACC_W = 32
) (
    input  wire                    clk,
    input  wire                    clear,  // start a new output: acc <= 0 (no tap this cycle)
    input  wire                    en,     // a tap word is presented this cycle
    input  wire                    pad,    // the tap lies on zero padding
    input  wire [LANES-1:0]        w,
    input  wire [LANES-1:0]        x,
    input  wire [LANES-1:0]        valid,  // real-channel lanes of this word
    output reg  signed [ACC_W-1:0] acc
);
    function automatic [ACC_W-1:0] popcount(input [LANES-1:0] v);
        integer i;
        begin
            popcount = {ACC_W{1'b0}};
            for (i = 0; i < LANES; i = i + 1) popcount = popcount + {{(ACC_W - 1) {1'b0}}, v[i]};
        end
    endfunction

    wire [LANES-1:0] match_bits = ~(w ^ x) & valid;
    wire signed [ACC_W-1:0] word_dot = $signed((popcount(match_bits) << 1) - popcount(valid));

    always @(posedge clk) begin
        if (clear) acc <= {ACC_W{1'b0}};
        else if (en && !pad) acc <= acc + word_dot;  // PAD: a padded tap adds nothing
    end
endmodule
