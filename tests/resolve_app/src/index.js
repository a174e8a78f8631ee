import { Cart } from "./cart.js";

function checkout(items) {
  const cart = new Cart(items);
  return cart.describe().join("\n"); // MARK:describe
}

try {
  checkout([{ name: "tea", cents: 250 }, { name: "refund", cents: -100 }]); // MARK:checkout
} catch (error) {
  console.log(error.stack);
}
