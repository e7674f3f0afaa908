/** The shapes of the synthetic scenes: names, plurals, look-alikes and where a label fits. */

export const SHAPES = ['circle', 'ring', 'square', 'diamond', 'triangle', 'pentagon', 'hexagon', 'star', 'cross'] as const;
export type ShapeName = (typeof SHAPES)[number];

export const PLURAL: Readonly<Record<ShapeName, string>> = {
  circle: 'circles', ring: 'rings', square: 'squares', diamond: 'diamonds', triangle: 'triangles',
  pentagon: 'pentagons', hexagon: 'hexagons', star: 'stars', cross: 'crosses',
};

export const SIMILAR_SHAPES: Readonly<Record<ShapeName, readonly ShapeName[]>> = {
  circle: ['ring', 'hexagon'], ring: ['circle'], square: ['diamond', 'pentagon'], diamond: ['square', 'triangle'],
  triangle: ['diamond', 'pentagon'], pentagon: ['hexagon', 'square'], hexagon: ['pentagon', 'circle'],
  star: ['cross'], cross: ['star'],
};

/** Label height as a fraction of the shape's size, and its downward offset; null: no room. */
export const LABEL_FIT: Readonly<Record<ShapeName, { scale: number; dy: number } | null>> = {
  circle: { scale: 0.5, dy: 0 }, ring: null, square: { scale: 0.5, dy: 0 }, diamond: { scale: 0.36, dy: 0 },
  triangle: { scale: 0.3, dy: 0.125 }, pentagon: { scale: 0.42, dy: 0.02 }, hexagon: { scale: 0.5, dy: 0 },
  star: { scale: 0.26, dy: 0.01 }, cross: { scale: 0.3, dy: 0 },
};
export const LABELLED_SHAPES = SHAPES.filter((s) => LABEL_FIT[s] !== null);
