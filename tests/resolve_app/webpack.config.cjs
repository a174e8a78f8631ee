// Production build with external source maps, for Node (the resolve tests run it there).
const path = require("node:path");

module.exports = {
  mode: "production",
  target: "node",
  devtool: "source-map",
  entry: "./src/index.js",
  output: { path: path.resolve(__dirname, "dist/webpack"), filename: "app.js" },
};
